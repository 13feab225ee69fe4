"""Staging of line-oriented inputs: Consent NDJSON, AuditEvent NDJSON and the facility registry CSV.
Each line is one record; a bad line is quarantined alone (K-CONSENT / K-AUDIT / K-FACILITY)."""

import json
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import polars as pl

from pipelines.fhir.systems import INFORMATION_KINDS
from pipelines.ingest import facility_registry, structure
from pipelines.ingest.flatten import flatten
from pipelines.ingest.pending import raw_pending
from pipelines.ingest.pseudonym import patient_keys
from pipelines.ingest.quarantine import quarantine_resources
from pipelines.ingest.raw_read import FACILITY_ROW
from pipelines.ingest.raw_windows import raw_windows
from pipelines.ingest.tables import append, tables_hold
from pipelines.ingest.vault import reveal_series
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
    # facility_registry.normalise_row names each problem by its column; one quarantine row per problem column
    return [RowRule("K-FACILITY", pl.col(f"problem_{field}").is_not_null(), pl.col(f"problem_{field}"))
            for field in facility_registry.PROBLEM_FIELDS]


def _with_patient_key(frame: pl.DataFrame, key: bytes) -> pl.DataFrame:
    # member_id is sealed in raw: revealed in memory for its shape check and the pseudonym (never staged)
    frame = frame.with_columns(member_id=reveal_series(frame["member_id"], key))
    valid = pl.when(pl.col("member_id").str.contains(ig_rules.MEMBER_ID_RE)).then(pl.col("member_id"))
    return frame.with_columns(patient_key=patient_keys(frame.select(valid.alias("m"))["m"], key))


def _prepare_consent(frame: pl.DataFrame, key: bytes) -> pl.DataFrame:
    return _with_patient_key(frame, key).rename({"resource_id": "consent_id"})


def _resource_refs_json(frame: pl.DataFrame) -> pl.Series:
    """JSON array of "<医療機関番号>|<resourceInstance identifier>" per AuditEvent (null when none are named).

    A resource's identity is institution + identifier; the institution is the identifier's assigner. When the
    assigners do not pair up one-to-one with the identifiers, every institution is recorded as unknown ("|id")
    rather than guessed — the access stays in the audit trail either way.
    """
    ids, insts = pl.col("resource_identifiers"), pl.col("resource_institutions")
    named = frame.select(
        pl.int_range(pl.len()).alias("_row"), ids,
        pl.when(ids.list.len() == insts.list.len()).then(insts)
        .otherwise(ids.list.eval(pl.lit(""))).alias("_insts"),
    ).filter(ids.list.len() > 0)
    refs = (named.explode(["resource_identifiers", "_insts"])
            .group_by("_row", maintain_order=True)
            .agg(pl.concat_str([pl.col("_insts").fill_null(""), pl.lit("|"), "resource_identifiers"]).alias("refs")))
    encoded = refs.select("_row", pl.col("refs").map_elements(lambda r: json.dumps(list(r), ensure_ascii=False),
                                                              return_dtype=pl.String).alias("json"))
    return (pl.DataFrame({"_row": range(frame.height)}, schema={"_row": pl.Int64})
            .join(encoded.with_columns(pl.col("_row").cast(pl.Int64)), on="_row", how="left")["json"])


def _prepare_access(frame: pl.DataFrame, key: bytes) -> pl.DataFrame:
    return _with_patient_key(frame, key).with_columns(
        access_id=pl.col("resource_id"), kinds_text=pl.col("kinds").list.join(","),
        resource_refs_json=_resource_refs_json(frame))


def _facility_source(resource_type: str, lo: int, hi: int) -> str:
    # Headers vary by bureau (医療機関番号 / institution_number …): the row is mapped in _prepare_facility.
    return f"""
        SELECT raw_id, bundle_key, file_id, resource::VARCHAR AS row_json
        FROM raw.resource WHERE resource_type = '{resource_type}' AND raw_id > {lo} AND raw_id <= {hi}
    """


def _prepare_facility(frame: pl.DataFrame, key: bytes) -> pl.DataFrame:
    # Registries are typed by hand: headers, full-width digits, separators and dates are normalised first.
    rows = facility_registry.normalise_json_rows(frame["row_json"].to_list())
    schema = {c: pl.String for c in facility_registry.HEADER_ALIASES} | {"bed_count": pl.Int64} | {
        f"problem_{f}": pl.String for f in facility_registry.PROBLEM_FIELDS}
    return pl.concat([frame.drop("row_json"), pl.DataFrame(rows, schema=schema)], how="horizontal")


@dataclass(frozen=True)
class LineStage:
    table: str
    view: str | None  # staging ViewDefinition flattening the lines; None = the source query is already flat
    resource_type: str  # raw.resource.resource_type of the lines
    source: Callable[[str, int, int], str]  # (resource_type, lo, hi) → the window's lines
    prepare: Callable[[pl.DataFrame, bytes], pl.DataFrame]
    rules: Callable[[], list[RowRule]]
    contract: type

    @property
    def consumer(self) -> str:
        return f"staging.{self.table}"


def _ndjson_source(resource_type: str, lo: int, hi: int) -> str:
    return f"""SELECT raw_id, bundle_key, file_id, resource, structure_error
               FROM raw.resource LEFT JOIN staging.structure_failure USING (raw_id)
               WHERE resource_type = '{resource_type}' AND bundle_key IS NULL AND raw_id > {lo} AND raw_id <= {hi}"""


LINE_STAGES = [
    LineStage("consent", "consent", "Consent", _ndjson_source, _prepare_consent, _consent_rules,
              contracts.StagedConsent),
    LineStage("access_event", "access_event", "AuditEvent", _ndjson_source, _prepare_access,
              _access_rules, contracts.StagedAccessEvent),
    LineStage("facility", None, FACILITY_ROW, _facility_source, _prepare_facility, _facility_rules,
              contracts.StagedFacility),
]


def _nothing_to_stage(con: duckdb.DuckDBPyConnection, stage: LineStage, lo: int, hi: int) -> bool:
    """No line of the stage's type in (lo, hi], and its table already has every column an empty append would
    give it: the window only moves the watermark."""
    return not raw_pending(con, stage.resource_type, lo, hi) and tables_hold(
        con, {f"staging.{stage.table}": contracts.contract_columns(stage.contract)})


def stage_lines(con: duckdb.DuckDBPyConnection, stage: LineStage, pseudonym_key: bytes) -> tuple[int, int]:
    """Returns (rows staged, records quarantined)."""
    staged = quarantined = 0
    for lo, hi in raw_windows(con, get_watermark(con, stage.consumer), get_watermark(con, structure.CONSUMER)):
        with transaction(con):
            if hi > lo and not _nothing_to_stage(con, stage, lo, hi):
                sql = stage.source(stage.resource_type, lo, hi)
                frame = (flatten(con, stage.view, sql, ["raw_id", "bundle_key", "file_id", "structure_error"]) if stage.view
                         else con.execute(sql).pl())
                frame = stage.prepare(frame, pseudonym_key)
                failed = ig_rules.failures(frame, stage.rules(), "raw_id")
                passing = frame.join(failed.select("raw_id"), on="raw_id", how="anti")
                contract_failed = contracts.contract_failures(stage.contract, passing)
                passing = passing.join(contract_failed.select("raw_id"), on="raw_id", how="anti")
                quarantined += quarantine_resources(con, pl.concat([failed, contract_failed]))
                staged += append(con, f"staging.{stage.table}", contracts.select_columns(stage.contract, passing))
            set_watermark(con, stage.consumer, hi)
    return staged, quarantined
