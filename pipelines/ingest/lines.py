"""Staging of line-oriented inputs: Consent NDJSON, AuditEvent NDJSON and the facility registry CSV.
Each line is one record; a bad line is quarantined alone (K-CONSENT / K-AUDIT / K-FACILITY)."""

from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import polars as pl

from pipelines.fhir.systems import INFORMATION_KINDS
from pipelines.ingest import structure
from pipelines.ingest.flatten import flatten
from pipelines.ingest.pseudonym import patient_keys
from pipelines.ingest.quarantine import quarantine_resources
from pipelines.ingest.raw import FACILITY_ROW
from pipelines.ingest.tables import append
from pipelines.validation import contracts, ig_rules
from pipelines.validation.ig_rules import RowRule
from pipelines.warehouse import get_watermark, set_watermark, transaction


def _missing(col: str, rule: str, what: str) -> RowRule:
    return RowRule(rule, pl.col(col).is_null(), pl.lit(f"{what} is missing"))


def _member_id_rules(rule: str) -> list[RowRule]:
    member = pl.col("member_id")
    return [
        _missing("member_id", rule, "patient JP_Insurance_memberID"),
        RowRule(rule, member.is_not_null() & ~member.str.contains(ig_rules.MEMBER_ID_RE),
                pl.lit("patient identifier does not match 保険者番号8桁:記号:番号:枝番")),
    ]


def _consent_rules() -> list[RowRule]:
    return [ig_rules.structure_rule()] + _member_id_rules("K-CONSENT") + [
        _missing("event_time", "K-CONSENT", "Consent.dateTime"),
        RowRule("K-CONSENT", ~pl.col("status").is_in(["active", "inactive"]).fill_null(False),
                pl.format("status {} (expected active or inactive)", pl.col("status").fill_null("(none)"))),
        RowRule("K-CONSENT", pl.col("kind").is_not_null() & ~pl.col("kind").is_in(list(INFORMATION_KINDS)),
                pl.format("unknown kind of information {}", pl.col("kind"))),
        RowRule("K-CONSENT", pl.col("grantee").is_not_null()
                & ~pl.col("grantee").str.contains(ig_rules.INSTITUTION_NUMBER_RE),
                pl.format("grantee {} is not a 10-digit 医療機関番号", pl.col("grantee"))),
    ]


def _access_rules() -> list[RowRule]:
    return [ig_rules.structure_rule()] + _member_id_rules("K-AUDIT") + [
        _missing("recorded", "K-AUDIT", "AuditEvent.recorded"),
        RowRule("K-AUDIT", ~pl.col("viewer").str.contains(ig_rules.INSTITUTION_NUMBER_RE).fill_null(False),
                pl.format("requestor {} is not a 10-digit 医療機関番号", pl.col("viewer").fill_null("(none)"))),
    ]


def _facility_rules() -> list[RowRule]:
    inst = pl.col("institution_number")
    return [
        RowRule("K-FACILITY", ~inst.str.contains(ig_rules.INSTITUTION_NUMBER_RE).fill_null(False),
                pl.format("医療機関番号 {} is not 10 digits (都道府県 01–47 + 点数表 1/3 + 7)", inst.fill_null("(none)"))),
        RowRule("K-FACILITY", ~pl.col("facility_type").is_in(["hospital", "clinic", "dental"]).fill_null(False),
                pl.format("facility_type {}", pl.col("facility_type").fill_null("(none)"))),
    ]


def _with_patient_key(frame: pl.DataFrame, key: bytes) -> pl.DataFrame:
    valid = pl.when(pl.col("member_id").str.contains(ig_rules.MEMBER_ID_RE)).then(pl.col("member_id"))
    return frame.with_columns(patient_key=patient_keys(frame.select(valid.alias("m"))["m"], key))


def _prepare_consent(frame: pl.DataFrame, key: bytes) -> pl.DataFrame:
    return _with_patient_key(frame, key).rename({"resource_id": "consent_id"})


def _prepare_access(frame: pl.DataFrame, key: bytes) -> pl.DataFrame:
    return _with_patient_key(frame, key).with_columns(
        access_id=pl.col("resource_id"), kinds_text=pl.col("kinds").list.join(","))


def _facility_source(lo: int, hi: int) -> str:
    field = "nullif(trim(resource->>'$.{0}'), '') AS {0}"
    names = ["institution_number", "facility_name", "facility_type", "bed_count", "applied_on", "connected_on",
             "first_submission_on", "first_view_on"]
    return f"""
        SELECT raw_id, bundle_key, file_id, {', '.join(field.format(n) for n in names)}
        FROM raw.resource WHERE resource_type = '{FACILITY_ROW}' AND raw_id > {lo} AND raw_id <= {hi}
    """


def _prepare_facility(frame: pl.DataFrame, key: bytes) -> pl.DataFrame:
    # Registries are typed by hand: full-width digits (０１２) are normalised before any check.
    inst = pl.col("institution_number").str.normalize("NFKC").str.strip_chars()
    return frame.with_columns(institution_number=inst).with_columns(
        prefecture_code=pl.col("institution_number").str.slice(0, 2),
        score_table=pl.col("institution_number").str.slice(2, 1),
        facility_type=pl.col("facility_type").str.strip_chars().str.to_lowercase(),
        bed_count=pl.col("bed_count").str.normalize("NFKC").cast(pl.Int64, strict=False),
    )


@dataclass(frozen=True)
class LineStage:
    table: str
    view: str | None  # staging ViewDefinition flattening the lines; None = the source query is already flat
    source: Callable[[int, int], str]
    prepare: Callable[[pl.DataFrame, bytes], pl.DataFrame]
    rules: Callable[[], list[RowRule]]
    contract: type

    @property
    def consumer(self) -> str:
        return f"staging.{self.table}"


def _ndjson_source(resource_type: str) -> Callable[[int, int], str]:
    def source(lo: int, hi: int) -> str:
        return f"""SELECT raw_id, bundle_key, file_id, resource, structure_error
                   FROM raw.resource LEFT JOIN staging.structure_failure USING (raw_id)
                   WHERE resource_type = '{resource_type}' AND bundle_key IS NULL AND raw_id > {lo} AND raw_id <= {hi}"""
    return source


LINE_STAGES = [
    LineStage("consent", "consent", _ndjson_source("Consent"), _prepare_consent, _consent_rules,
              contracts.StagedConsent),
    LineStage("access_event", "access_event", _ndjson_source("AuditEvent"), _prepare_access,
              _access_rules, contracts.StagedAccessEvent),
    LineStage("facility", None, _facility_source, _prepare_facility, _facility_rules, contracts.StagedFacility),
]


def stage_lines(con: duckdb.DuckDBPyConnection, stage: LineStage, pseudonym_key: bytes) -> tuple[int, int]:
    """Returns (rows staged, records quarantined)."""
    lo = get_watermark(con, stage.consumer)
    hi = get_watermark(con, structure.CONSUMER)
    staged = quarantined = 0
    with transaction(con):
        if hi > lo:
            sql = stage.source(lo, hi)
            frame = (flatten(con, stage.view, sql, ["raw_id", "bundle_key", "file_id", "structure_error"]) if stage.view
                     else con.sql(sql).pl())
            frame = stage.prepare(frame, pseudonym_key)
            failed = ig_rules.failures(frame, stage.rules(), "raw_id")
            passing = frame.join(failed.select("raw_id"), on="raw_id", how="anti")
            contract_failed = contracts.contract_failures(stage.contract, passing)
            passing = passing.join(contract_failed.select("raw_id"), on="raw_id", how="anti")
            quarantined = quarantine_resources(con, pl.concat([failed, contract_failed]))
            staged = append(con, f"staging.{stage.table}", contracts.select_columns(stage.contract, passing))
        set_watermark(con, stage.consumer, hi)
    return staged, quarantined
