"""Staging of bundle envelopes: the bundle-level IG rules (profile, type, R2152, R02142/3, R0211, the
Patient rules R0212/R1012/R1013/R1113) decide whether a bundle's entries go on; a rejected bundle is
quarantined whole (one row, raw = the bundle) and each of its entries is accounted as quarantined."""

from dataclasses import astuple, dataclass

import duckdb
import polars as pl

from pipelines.fhir import systems
from pipelines.fhir.bundle_kinds import BUNDLE_KINDS
from pipelines.ingest import structure
from pipelines.ingest.flatten import flatten
from pipelines.ingest.pseudonym import patient_keys
from pipelines.ingest.quarantine import record_outcomes
from pipelines.ingest.tables import append
from pipelines.ingest.vault import reveal_columns
from pipelines.validation import contracts, ig_rules
from pipelines.warehouse import get_watermark, set_watermark, transaction, windows
from pipelines.warehouse.watermark import window_ids

CONSUMER = "staging.bundle"
#: how far (in raw_id) every raw row has had its bundle staged; resource stages read up to here
RAW_CONSUMER = "staging.bundle@raw"
#: resources per bundle at CLINS sizes: a window of window_ids() // this many bundles ≈ window_ids() resources
ENTRIES_PER_BUNDLE = 10

_EXPECTED = pl.DataFrame(
    [(k.profile, k.bundle_type, k.first_entry, list(k.doc_types), k.category, k.bundle_identifier_rule,
      k.member_id_from) for k in BUNDLE_KINDS.values()],
    schema={"bundle_profile": pl.String, "expected_type": pl.String, "expected_first": pl.String,
            "expected_doc_types": pl.List(pl.String), "document_category": pl.String,
            "identifier_rule": pl.Boolean, "member_id_from": pl.String},
    orient="row",
)


@dataclass(frozen=True)
class StageResult:
    rows_in: int
    accepted: int
    rejected: int


def _entries_sql(resource_type: str, lo: int, hi: int) -> str:
    return f"""SELECT bundle_key, raw_id, full_url, resource FROM raw.resource
               WHERE resource_type = '{resource_type}' AND bundle_key > {lo} AND bundle_key <= {hi}"""


def _first_entry_sql(resource_type: str, lo: int, hi: int) -> str:
    return (_entries_sql(resource_type, lo, hi)
            + " QUALIFY row_number() OVER (PARTITION BY bundle_key ORDER BY entry_index) = 1")


def _document_parties(con: duckdb.DuckDBPyConnection, lo: int, hi: int, key: bytes) -> pl.DataFrame:
    """Per bundle: the first 医療機関番号 among its Organizations, and the insured person's identifier as an
    eCheckup document states it (Coverage 記号/番号/枝番 + the payor's 保険者番号), NFKC-normalised."""
    orgs = flatten(con, "organization", _entries_sql("Organization", lo, hi), ["bundle_key", "raw_id", "full_url"])
    # 記号・番号・枝番 are sealed in raw: revealed here, in memory, only to be hashed
    coverages = reveal_columns(flatten(con, "coverage", _entries_sql("Coverage", lo, hi), ["bundle_key", "raw_id"]),
                               ["symbol", "number", "branch"], key)
    institution = (orgs.filter(pl.col("institution_number").is_not_null()).sort("raw_id")
                   .group_by("bundle_key", maintain_order=True).agg(pl.col("institution_number").first()
                                                                   .alias("organization_institution")))
    parts = [pl.col(c).str.normalize("NFKC").str.strip_chars() for c in ("insurer_number", "symbol", "number")]
    member = (coverages.filter(pl.col("number").is_not_null())
              .join(orgs.select("bundle_key", pl.col("full_url").alias("payor_reference"), "insurer_number"),
                    on=["bundle_key", "payor_reference"], how="left")
              .sort("raw_id").group_by("bundle_key", maintain_order=True).first()
              .select("bundle_key", pl.concat_str([*parts, pl.col("branch").fill_null("").str.normalize("NFKC")],
                                                  separator=":").alias("coverage_member_id")))
    return institution.join(member, on="bundle_key", how="full", coalesce=True)


def _raw_id_before(con: duckdb.DuckDBPyConnection, lo: int) -> int:
    """The raw id just before the first entry of the bundles past key `lo` (bundles are numbered in raw id order):
    the lower bound of a window's raw reads, which otherwise cover every raw row and bundle ever landed."""
    return con.execute("SELECT coalesce(min(first_raw_id), 1) - 1 FROM raw.bundle WHERE bundle_key > ?",
                       [lo]).fetchone()[0]


def _bundle_frame(con: duckdb.DuckDBPyConnection, lo: int, hi: int, raw_lo: int, key: bytes) -> pl.DataFrame:
    envelopes = flatten(con, "bundle", f"SELECT bundle_key, envelope AS resource FROM raw.bundle "
                                       f"WHERE bundle_key > {lo} AND bundle_key <= {hi}", ["bundle_key"])
    facts = con.execute(f"SELECT bundle_key, file_id, batch_id, entry_count, entry_types FROM raw.bundle "
                        f"WHERE bundle_key > {lo} AND bundle_key <= {hi}").pl()
    patients = flatten(con, "patient", _first_entry_sql("Patient", lo, hi),
                       ["bundle_key", "raw_id", "full_url"]).rename(
        {"raw_id": "patient_raw_id", "full_url": "patient_full_url", "profiles": "patient_profiles",
         "resource_id": "patient_resource_id", "last_updated": "patient_last_updated"})
    # Sealed in raw; revealed in memory for R1013/R1113, the pseudonym and the prefecture, then dropped.
    patients = reveal_columns(patients, ["member_ids", "name_texts", "address_text"], key)
    compositions = flatten(con, "composition", _first_entry_sql("Composition", lo, hi),
                           ["bundle_key", "raw_id"]).select(
        "bundle_key", pl.col("raw_id").alias("composition_raw_id"),
        pl.col("type_code").alias("composition_type_code"), "document_identifier")
    patients = patients.join(
        con.execute("SELECT raw_id AS patient_raw_id, structure_error AS patient_structure_error "
                    f"FROM staging.structure_failure WHERE raw_id > {raw_lo}").pl(),
        on="patient_raw_id", how="left")
    frame = (
        facts.join(envelopes, on="bundle_key", how="left")
        .join(patients, on="bundle_key", how="left")
        .join(compositions, on="bundle_key", how="left")
        .join(_document_parties(con, lo, hi, key), on="bundle_key", how="left")
        .with_columns(bundle_profile=pl.col("profiles").list.first().str.replace(r"\|.*$", ""))
        .join(_EXPECTED, on="bundle_profile", how="left")
    )
    member = pl.when(pl.col("member_id_from") == "coverage").then(pl.col("coverage_member_id")) \
        .otherwise(pl.when(pl.col("member_ids").list.len() == 1).then(pl.col("member_ids").list.first()))
    frame = frame.with_columns(
        valid_member_id=pl.when(member.str.contains(ig_rules.MEMBER_ID_RE)).then(member),
        institution_number=pl.coalesce(pl.col("identifier_value").str.extract(r"^([0-9]{10})\^", 1),
                                       "organization_institution"),
    )
    return frame.with_columns(
        patient_key=patient_keys(frame["valid_member_id"], key),
        document_key=pl.when(pl.col("document_category").is_not_null() & pl.col("document_identifier").is_not_null())
        .then(pl.format("{}|{}", pl.col("institution_number"), pl.col("document_identifier"))),
    )


def stage_bundles(con: duckdb.DuckDBPyConnection, pseudonym_key: bytes) -> StageResult:
    lo = get_watermark(con, CONSUMER)
    # Only bundles whose every entry has been through the structure check.
    raw_hi = get_watermark(con, structure.CONSUMER)
    hi = con.execute(  # from the watermark on: the table holds every bundle ever landed
        "SELECT coalesce(max(bundle_key), 0) FROM raw.bundle WHERE bundle_key > ? AND coalesce(last_raw_id, 0) <= ?",
        [lo, raw_hi]).fetchone()[0]
    hi = max(hi, lo)
    total = StageResult(0, 0, 0)
    for window_lo, window_hi in windows(lo, hi, max(1, window_ids() // ENTRIES_PER_BUNDLE)):
        # Downstream steps read the raw position: mid-way, it is the last entry of this window's last bundle.
        window_raw_hi = raw_hi if window_hi == hi else con.execute(
            "SELECT coalesce(max(last_raw_id), 0) FROM raw.bundle WHERE bundle_key <= ?", [window_hi]).fetchone()[0]
        result = _stage_bundle_window(con, window_lo, window_hi, window_raw_hi, pseudonym_key)
        total = StageResult(*(a + b for a, b in zip(astuple(total), astuple(result), strict=True)))
    return total


def _stage_bundle_window(con: duckdb.DuckDBPyConnection, lo: int, hi: int, raw_hi: int,
                         pseudonym_key: bytes) -> StageResult:
    frame = None
    if hi > lo:
        raw_lo = _raw_id_before(con, lo)
        frame = _bundle_frame(con, lo, hi, raw_lo, pseudonym_key)
    if frame is None or frame.is_empty():
        with transaction(con):
            set_watermark(con, CONSUMER, hi)
            set_watermark(con, RAW_CONSUMER, raw_hi)
        return StageResult(0, 0, 0)

    failed = ig_rules.failures(frame, ig_rules.bundle_rules(), "bundle_key")
    # The Patient of each bundle: demographics only (no identifier, name, address or phone). Its contract
    # is part of the envelope: a bundle whose Patient breaks it is rejected whole.
    patients = frame.filter(~pl.col("bundle_key").is_in(failed["bundle_key"].implode())).select(
        pl.col("patient_raw_id").alias("raw_id"), "bundle_key", "patient_key", "gender", "birth_date",
        pl.coalesce("address_state", pl.col("address_text").str.extract(r"^(\S+?[都道府県])", 1)).alias("prefecture_name"),
        pl.col("patient_last_updated").alias("last_updated"),
    )
    patient_failed = contracts.contract_failures(contracts.StagedPatient, patients)
    failed = pl.concat([failed, patient_failed.join(patients.select("raw_id", "bundle_key"), on="raw_id")
                        .select("bundle_key", "rule_id", pl.format("Patient {}", pl.col("message")).alias("message"),
                                "rule_order")])
    rejected_keys = failed["bundle_key"].unique()
    patients = patients.filter(~pl.col("bundle_key").is_in(rejected_keys.implode()))
    staged = frame.select(
        "bundle_key", "file_id", "batch_id", "bundle_profile", "bundle_type",
        pl.col("identifier_value").alias("bundle_identifier"), "institution_number",
        (pl.col("bundle_profile") == systems.BUNDLE_CLINS).fill_null(False).alias("is_clins"),
        "document_category", "document_key", "composition_raw_id",
        "patient_key", "patient_raw_id", "patient_full_url", "patient_resource_id",
        ~pl.col("bundle_key").is_in(rejected_keys.implode()).alias("accepted"),
    )
    failures = failed.join(frame.select("bundle_key", "entry_count", "institution_number"), on="bundle_key")
    with transaction(con):
        append(con, "staging.bundle", staged)
        append(con, "staging.patient", contracts.select_columns(contracts.StagedPatient, patients))
        if rejected_keys.len():  # most windows reject nothing: no quarantine statements then
            con.register("bundle_failure", failures)
            # The quarantined bundle is rebuilt from its entries; only this window's rejected bundles are read
            # (a correlated subquery would aggregate every entry of raw.resource).
            con.execute(
                f"""
                WITH entries AS (
                    SELECT r.bundle_key, to_json(list(json_object('fullUrl', r.full_url, 'resource', r.resource)
                                                      ORDER BY r.entry_index)) AS entry
                    FROM raw.resource r
                    WHERE r.bundle_key > {lo} AND r.bundle_key <= {hi}
                      AND r.bundle_key IN (SELECT bundle_key FROM bundle_failure)
                    GROUP BY r.bundle_key)
                INSERT INTO ops.quarantine (batch_id, file_id, source_file, line_no, bundle_key, scope,
                    institution_number, bundle_identifier, rule_id, message, record_count, raw)
                SELECT b.batch_id, b.file_id, m.path, b.line_no, b.bundle_key, 'bundle',
                       coalesce(f.institution_number, m.sender), b.envelope->>'$.identifier.value', f.rule_id, f.message,
                       CASE WHEN f.rule_order = min(f.rule_order) OVER (PARTITION BY f.bundle_key)
                            THEN f.entry_count ELSE 0 END,
                       json_merge_patch(b.envelope, json_object('entry', coalesce(e.entry, '[]'::JSON)))::VARCHAR
                FROM bundle_failure f JOIN raw.bundle b USING (bundle_key) JOIN ops.file_manifest m USING (file_id)
                LEFT JOIN entries e USING (bundle_key)
                """
            )
            con.unregister("bundle_failure")
            # bounded by the window's raw ids: unbounded, both reads of raw.resource scanned every file of the lake,
            # a cost that grew with the warehouse, not the run
            record_outcomes(
                con,
                f"SELECT raw_id FROM raw.resource WHERE raw_id > {raw_lo} AND raw_id <= {raw_hi} AND bundle_key IN "
                f"(SELECT bundle_key FROM staging.bundle WHERE NOT accepted AND bundle_key > {lo} AND bundle_key <= {hi})",
                "quarantined",
                None,
                (raw_lo, raw_hi),
            )
        set_watermark(con, CONSUMER, hi)
        set_watermark(con, RAW_CONSUMER, raw_hi)
    return StageResult(frame.height, frame.height - rejected_keys.len(), rejected_keys.len())
