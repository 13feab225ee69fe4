"""Staging of document bundles (診療情報提供書 / 退院時サマリー / 患者サマリー): the Composition header,
its sections (any depth) with their entry references, and the supporting entries (Practitioner,
Organization, Encounter, DocumentReference, non-lab Observations…) that are not clinical rows."""

import duckdb
import polars as pl

from pipelines.ingest.bundles import RAW_CONSUMER
from pipelines.ingest.flatten import flatten, view_column_names
from pipelines.ingest.quarantine import quarantine_resources
from pipelines.ingest.raw_windows import first_bundle, raw_windows
from pipelines.ingest.resources import LAB_PROFILE
from pipelines.ingest.tables import append, tables_hold
from pipelines.validation import contracts
from pipelines.warehouse import get_watermark, set_watermark, transaction

CONSUMER = "staging.document"
CLINICAL_TYPES = ("Condition", "AllergyIntolerance", "MedicationRequest")


def _compositions_sql(lo: int, hi: int, bundles_from: int = 0) -> str:
    return f"""
        SELECT r.raw_id, r.resource, r.bundle_key, r.file_id, b.document_key, b.institution_number,
               b.patient_key, b.document_category AS category
        FROM raw.resource r JOIN staging.bundle b ON r.raw_id = b.composition_raw_id
        WHERE b.accepted AND b.document_category IS NOT NULL AND b.bundle_key >= {bundles_from}
          AND r.raw_id > {lo} AND r.raw_id <= {hi}
    """


def supporting_entries_sql(lo: int, hi: int, bundles_from: int = 0) -> str:
    """Entries of accepted documents that are neither the header, the Patient nor clinical data."""
    return f"""
        SELECT r.raw_id, r.bundle_key, r.file_id, b.document_key, r.resource_type,
               json_extract_string(r.resource, '$.meta.profile[0]') AS profile
        FROM raw.resource r JOIN staging.bundle b USING (bundle_key)
        WHERE b.accepted AND b.document_category IS NOT NULL AND b.bundle_key >= {bundles_from}
          AND r.raw_id > {lo} AND r.raw_id <= {hi}
          AND r.raw_id IS DISTINCT FROM b.composition_raw_id AND r.raw_id IS DISTINCT FROM b.patient_raw_id
          AND r.resource_type NOT IN {CLINICAL_TYPES}
          -- lab Observations are 検査/感染症 and a checkup report's Observations are its results: not supporting
          AND NOT (r.resource_type = 'Observation' AND (b.document_category = 'checkup'
                   OR json_extract_string(r.resource, '$.meta.profile') LIKE '%{LAB_PROFILE}%'))
    """


SECTION_CARRY = ("raw_id", "bundle_key", "document_key")
SUPPORTING_COLUMNS = ("raw_id", "bundle_key", "file_id", "document_key", "resource_type", "profile")


def _nothing_to_stage(con: duckdb.DuckDBPyConnection, lo: int, hi: int) -> bool:
    """No accepted document has an entry in (lo, hi], and the three tables already have every column an empty
    append would give them: the window only moves the watermark."""
    documents = con.execute(
        """SELECT EXISTS (SELECT 1 FROM staging.bundle s JOIN raw.bundle r USING (bundle_key)
                           WHERE s.accepted AND s.document_category IS NOT NULL
                             AND r.first_raw_id <= ? AND r.last_raw_id > ?)""", [hi, lo]).fetchone()[0]
    return not documents and tables_hold(con, {
        "staging.document": contracts.contract_columns(contracts.StagedDocument),
        "staging.document_section": [*SECTION_CARRY, *(c for c in view_column_names("document_section")
                                                        if c != "resource_id")],
        "staging.document_resource": SUPPORTING_COLUMNS,
    })


def stage_documents(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Returns (documents staged, records quarantined)."""
    staged = quarantined = 0
    for lo, hi in raw_windows(con, get_watermark(con, CONSUMER), get_watermark(con, RAW_CONSUMER)):
        with transaction(con):
            if hi > lo and not _nothing_to_stage(con, lo, hi):
                carry = ["raw_id", "bundle_key", "file_id", "document_key", "institution_number", "patient_key", "category"]
                bundles_from = first_bundle(con, lo)
                headers = flatten(con, "composition", _compositions_sql(lo, hi, bundles_from), carry)
                failed = contracts.contract_failures(contracts.StagedDocument, headers)
                passing = headers.join(failed.select("raw_id"), on="raw_id", how="anti")
                quarantined += quarantine_resources(con, failed.join(
                    headers.select("raw_id", "institution_number", pl.col("document_identifier").alias("resource_identifier")),
                    on="raw_id", how="left"))
                staged += append(con, "staging.document", contracts.select_columns(contracts.StagedDocument, passing))
                sections = flatten(con, "document_section", _compositions_sql(lo, hi, bundles_from), SECTION_CARRY)
                append(con, "staging.document_section", sections.drop("resource_id"))
                append(con, "staging.document_resource",
                       con.execute(supporting_entries_sql(lo, hi, bundles_from)).pl())
            set_watermark(con, CONSUMER, hi)
    return staged, quarantined
