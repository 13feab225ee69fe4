"""Staging of checkup results (健診結果, category `checkup`) from both forms into one row shape:

- eCheckup FHIR documents: the document's Observations through the `checkup_observation` view, with the
  header (who, when, which programme, where) from the bundle, its Patient, Composition and Encounter;
- 特定健診 XML archives: each person's CDA document (raw rows of CHECKUP_DOCUMENT) parsed by
  pipelines.checkups.cda.

Then the plausibility rules (pipelines.checkups.plausibility) and the contract; a failure quarantines the raw
record it came from (an Observation, or a whole CDA document). Group Observations (hasMember, no value of
their own) carry no row: they are stored as supporting document entries.
"""

import duckdb
import polars as pl

from pipelines.checkups.cda import HEADER_COLUMNS, ITEM_COLUMNS, CheckupFormatError, read_checkup_document
from pipelines.checkups.fhir import checkup_rows
from pipelines.checkups.plausibility import apply_plausibility
from pipelines.checkups.rows import CHECKUP_KEY, ROW_SCHEMA, empty_rows
from pipelines.ingest.bundles import RAW_CONSUMER
from pipelines.ingest.documents import SUPPORTING_COLUMNS
from pipelines.ingest.flatten import flatten
from pipelines.ingest.pending import raw_pending
from pipelines.ingest.pseudonym import patient_keys
from pipelines.ingest.quarantine import quarantine_resources
from pipelines.ingest.raw_read import CHECKUP_DOCUMENT
from pipelines.ingest.raw_windows import first_bundle, raw_windows
from pipelines.ingest.tables import append, tables_hold
from pipelines.ingest.vault import reveal_text
from pipelines.validation import contracts, ig_rules
from pipelines.warehouse import get_watermark, set_watermark, transaction

CONSUMER = "staging.checkup_result"
ROW_KEY = [*CHECKUP_KEY, "item_code"]


def _checkup_bundles_sql(lo: int, hi: int, resource_type: str, bundles_from: int = 0) -> str:
    return f"""
        SELECT r.raw_id, r.resource, r.bundle_key, r.full_url FROM raw.resource r JOIN staging.bundle b USING (bundle_key)
        WHERE b.accepted AND b.document_category = 'checkup' AND b.bundle_key >= {bundles_from}
          AND r.resource_type = '{resource_type}' AND r.raw_id > {lo} AND r.raw_id <= {hi}"""


def _fhir_headers(con: duckdb.DuckDBPyConnection, lo: int, hi: int, bundles_from: int) -> pl.DataFrame:
    """One row per checkup bundle: the header fields checkup_rows needs (the patient as its key)."""
    comps = flatten(con, "composition", _checkup_bundles_sql(lo, hi, "Composition", bundles_from), ["bundle_key"])
    encounters = flatten(con, "encounter", _checkup_bundles_sql(lo, hi, "Encounter", bundles_from),
                         ["bundle_key", "full_url"])
    bundles = con.execute(f"""
        SELECT b.bundle_key, b.patient_key, b.institution_number, p.gender AS sex, p.birth_date
        FROM staging.bundle b JOIN staging.patient p ON p.raw_id = b.patient_raw_id
        WHERE b.accepted AND b.document_category = 'checkup' AND b.bundle_key >= {bundles_from} AND b.bundle_key IN (
            SELECT bundle_key FROM raw.resource WHERE raw_id > {lo} AND raw_id <= {hi})""").pl()
    return (
        bundles.join(comps.select("bundle_key", pl.col("document_identifier").alias("document_id"),
                                  pl.col("program_code").alias("program"), "encounter_reference"),
                     on="bundle_key", how="left")
        .join(encounters.select("bundle_key", pl.col("full_url").alias("encounter_reference"),
                                pl.col("period_start").str.slice(0, 10).alias("checkup_date")),
              on=["bundle_key", "encounter_reference"], how="left")
        .unique("bundle_key", keep="first")
        .select("bundle_key", pl.col("patient_key").alias("member_id"), "sex", "birth_date", "checkup_date",
                "program", "institution_number", "document_id")
    )


def _fhir_rows(con: duckdb.DuckDBPyConnection, lo: int, hi: int,
               bundles_from: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows with raw_id, the Observation raw_ids that carry no row of their own — group Observations)."""
    observations = flatten(con, "checkup_observation", _checkup_bundles_sql(lo, hi, "Observation", bundles_from),
                           ["raw_id", "bundle_key"])
    if observations.is_empty():
        return empty_rows().with_columns(raw_id=pl.lit(None, pl.Int64)), pl.DataFrame(schema={"raw_id": pl.Int64})
    # The patient travels in member_id as its pseudonymous key: the raw identifier is not needed here.
    frame = observations.join(_fhir_headers(con, lo, hi, bundles_from), on="bundle_key", how="left")
    rows = checkup_rows(frame, {}, carry=("raw_id",))
    without = observations.select("raw_id").unique().join(rows.select("raw_id").unique(), on="raw_id", how="anti")
    return rows, without


def _xml_rows(con: duckdb.DuckDBPyConnection, lo: int, hi: int, key: bytes) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows with raw_id, format failures). XML is parsed per document (there is no set-based XML parser), but
    the rows of every document in the window make one frame: a frame per document cost more than the parse."""
    documents = con.execute(
        f"SELECT raw_id, resource->>'$.cda' FROM raw.resource WHERE resource_type = '{CHECKUP_DOCUMENT}' "
        f"AND raw_id > {lo} AND raw_id <= {hi} ORDER BY raw_id").fetchall()
    headers, items, item_raw_ids, failed = [], [], [], []
    for raw_id, xml in documents:
        try:
            # sealed whole in raw (it names the insured person): revealed in memory to be parsed
            header, found = read_checkup_document(reveal_text(xml, key))
        except CheckupFormatError as exc:
            failed.append({"raw_id": raw_id, "rule_id": exc.rule_id, "message": str(exc), "rule_order": 0,
                           "resource_identifier": None, "institution_number": None})
            continue
        headers.append((raw_id, *header))
        items += found
        item_raw_ids += [raw_id] * len(found)
    rows = _document_rows(headers, items, item_raw_ids)
    valid = pl.when(pl.col("member_id").str.contains(ig_rules.MEMBER_ID_RE)).then(pl.col("member_id"))
    rows = rows.with_columns(member_id=patient_keys(rows.select(valid.alias("m"))["m"], key))
    no_subject = rows.filter(pl.col("member_id").is_null()).select(
        "raw_id", pl.col("document_id").alias("resource_identifier"), "institution_number").unique("raw_id").with_columns(
        rule_id=pl.lit("K-CHECKUP"), message=pl.lit("被保険者 (保険者番号:記号:番号:枝番) cannot be read"),
        rule_order=pl.lit(0, pl.Int32))
    failures = pl.concat([pl.DataFrame(failed, schema=_FAILURE), no_subject.select(list(_FAILURE)),
                          _repeated_items(rows)])
    return rows.filter(pl.col("member_id").is_not_null()), failures


def _repeated_items(rows: pl.DataFrame) -> pl.DataFrame:
    """K-CHECKUP-REPEAT for each document reporting an item code more than once: which value counts is not ours
    to choose (a second reading has an item code of its own)."""
    return (rows.filter(pl.col("item_code").is_not_null())
            .group_by("raw_id", "item_code", maintain_order=True)
            .agg(pl.len().alias("times"), pl.first("document_id"), pl.first("institution_number"))
            .filter(pl.col("times") > 1)
            .group_by("raw_id", maintain_order=True)
            .agg(pl.col("item_code").sort().str.join(", "), pl.first("document_id"), pl.first("institution_number"))
            .select("raw_id", rule_id=pl.lit("K-CHECKUP-REPEAT"),
                    message=pl.format("特定健診項目 {} reported more than once in one document", "item_code"),
                    rule_order=pl.lit(1, pl.Int32), resource_identifier="document_id",
                    institution_number="institution_number"))


def _document_rows(headers: list[tuple], items: list[tuple], item_raw_ids: list[int]) -> pl.DataFrame:
    """Common rows (+ raw_id) from each document's header (one per raw_id) and its items, in document order."""
    header_frame = pl.DataFrame(headers, orient="row", schema={
        "raw_id": pl.Int64, **{c: ROW_SCHEMA[c] for c in HEADER_COLUMNS}})
    item_frame = pl.DataFrame(items, orient="row", schema={c: ROW_SCHEMA[c] for c in ITEM_COLUMNS}) \
        .with_columns(raw_id=pl.Series(item_raw_ids, dtype=pl.Int64))
    return (item_frame.join(header_frame, on="raw_id", how="left", maintain_order="left")
            .with_columns(source_form=pl.lit("xml", ROW_SCHEMA["source_form"]))
            .select(*ROW_SCHEMA, "raw_id"))


_FAILURE = {"raw_id": pl.Int64, "rule_id": pl.String, "message": pl.String, "rule_order": pl.Int32,
            "resource_identifier": pl.String, "institution_number": pl.String}


def _nothing_to_stage(con: duckdb.DuckDBPyConnection, lo: int, hi: int) -> bool:
    """No accepted checkup bundle and no CDA document has a record in (lo, hi], and both tables already have every
    column an empty append would give them: the window only moves the watermark (most windows of a national
    ingest hold no checkup, and parsing nothing still cost a flatten of three views)."""
    pending = raw_pending(con, CHECKUP_DOCUMENT, lo, hi) or con.execute(
        f"""SELECT EXISTS (SELECT 1 FROM raw.resource r JOIN staging.bundle b USING (bundle_key)
                           WHERE b.accepted AND b.document_category = 'checkup'
                             AND r.raw_id > {lo} AND r.raw_id <= {hi})""").fetchone()[0]
    return not pending and tables_hold(con, {
        "staging.checkup_result": contracts.contract_columns(contracts.StagedCheckupResult),
        "staging.document_resource": SUPPORTING_COLUMNS,
    })


def stage_checkups(con: duckdb.DuckDBPyConnection, pseudonym_key: bytes) -> tuple[int, int]:
    """Returns (rows staged, records quarantined)."""
    staged = quarantined = 0
    for lo, hi in raw_windows(con, get_watermark(con, CONSUMER), get_watermark(con, RAW_CONSUMER),
                              heavy_type=CHECKUP_DOCUMENT):
        with transaction(con):
            if hi > lo and not _nothing_to_stage(con, lo, hi):
                bundles_from = first_bundle(con, lo)  # window bounds for the reads of staging.bundle
                fhir, groups = _fhir_rows(con, lo, hi, bundles_from)
                xml, xml_failed = _xml_rows(con, lo, hi, pseudonym_key)
                rows = pl.concat([fhir, xml.select(fhir.columns)])
                passing, implausible = apply_plausibility(rows.drop("raw_id"))
                index = rows.select(*ROW_KEY, "raw_id").unique(ROW_KEY, keep="first")
                failed = pl.concat([
                    xml_failed.select(list(_FAILURE)),
                    implausible.join(index, on=ROW_KEY, how="left").select(
                        "raw_id", "rule_id", "message", pl.lit(10, pl.Int32).alias("rule_order"),
                        pl.col("document_id").alias("resource_identifier"),
                        pl.col("institution_number")),
                ])
                # One raw record, one outcome: an implausible item quarantines the record that carried it.
                passing = passing.join(index, on=ROW_KEY, how="left").join(failed.select("raw_id"), on="raw_id",
                                                                              how="anti")
                provenance = con.execute(f"SELECT raw_id, bundle_key, file_id FROM raw.resource "
                                         f"WHERE raw_id > {lo} AND raw_id <= {hi}").pl()
                passing = (passing.rename({"member_id": "patient_key"})
                           .with_columns(category=pl.lit("checkup"),
                                         checkup_date=pl.col("checkup_date").str.to_date(strict=False))
                           .join(provenance, on="raw_id", how="left"))
                contract_failed = contracts.contract_failures(contracts.StagedCheckupResult, passing)
                passing = passing.join(contract_failed.select("raw_id"), on="raw_id", how="anti")
                quarantined += quarantine_resources(con, pl.concat([failed, contract_failed], how="diagonal_relaxed"))
                staged += append(con, "staging.checkup_result",
                                contracts.select_columns(contracts.StagedCheckupResult, passing))
                con.register("group_observation", groups)
                append(con, "staging.document_resource", con.execute(
                    f"""SELECT r.raw_id, r.bundle_key, r.file_id, b.document_key, r.resource_type,
                               json_extract_string(r.resource, '$.meta.profile[0]') AS profile
                        FROM raw.resource r JOIN staging.bundle b USING (bundle_key)
                        WHERE r.raw_id > {lo} AND r.raw_id <= {hi} AND b.bundle_key >= {bundles_from}
                          AND r.raw_id IN (SELECT raw_id FROM group_observation)""").pl())
                con.unregister("group_observation")
            set_watermark(con, CONSUMER, hi)
    return staged, quarantined
