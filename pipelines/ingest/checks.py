"""Warehouse-wide invariants, as pure functions the asset checks and the tests both call."""

import duckdb
import polars as pl

from pipelines.config import load_settings
from pipelines.ingest import vault
from pipelines.validation.ig_rules import MEMBER_ID_RE
from pipelines.warehouse.grain import RECORD_OUTCOME, repeated_keys


def records_without_outcome(con: duckdb.DuckDBPyConnection) -> int:
    """Raw records that have not ended anywhere (a loaded row, a duplicate, a tombstone or quarantine)."""
    return con.execute("SELECT count(*) FROM raw.resource ANTI JOIN ops.record_outcome USING (raw_id)").fetchone()[0]


def records_with_several_outcomes(con: duckdb.DuckDBPyConnection, batch_id: int) -> int:
    """Records of the files run `batch_id` reported that have more than one outcome (each would count twice in
    its receipt; no key refuses the second, pipelines/warehouse/grain.py)."""
    first = con.execute("""SELECT min(raw_id) FROM raw.resource WHERE file_id IN (
                               SELECT file_id FROM ops.file_manifest WHERE reported_batch_id = ?)""",
                        [batch_id]).fetchone()[0]
    return 0 if first is None else repeated_keys(con, RECORD_OUTCOME, first - 1)


def outcome_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(con.execute("SELECT outcome, count(*) FROM ops.record_outcome GROUP BY ALL").fetchall())


#: where raw holds a patient's identifying values (sealed: pipelines/ingest/vault.py)
_SENSITIVE_PATHS = [("Patient", "$.identifier[*].value"), ("Patient", "$.name[*].text"),
                    ("Patient", "$.telecom[*].value"), ("Patient", "$.address[*].text"),
                    ("Consent", "$.patient.identifier.value")]
_SENSITIVE_SQL = " UNION ALL ".join(
    f"SELECT unnest(json_extract_string(resource, ['{path}'])) AS v FROM raw.resource WHERE resource_type = '{rtype}'"
    if "[*]" not in path else
    f"SELECT unnest(json_extract_string(resource, '{path}')) AS v FROM raw.resource WHERE resource_type = '{rtype}'"
    for rtype, path in _SENSITIVE_PATHS)
#: raw rows whose identifying values are not vault tokens (each should be zero)
_UNSEALED_SQL = {
    "raw.resource.resource (Patient values outside the vault)": f"""
        SELECT count(*) FROM (SELECT DISTINCT v FROM ({_SENSITIVE_SQL})) WHERE v NOT LIKE '{vault.PREFIX}%'""",
    "raw.resource.resource (CDA documents outside the vault)": f"""
        SELECT count(*) FROM raw.resource WHERE resource_type = 'CheckupDocument'
        AND (resource->>'$.cda') NOT LIKE '{vault.PREFIX}%'""",
    "ops.quarantine.raw (unparsed text outside the vault)": f"""
        SELECT count(*) FROM ops.quarantine WHERE scope IN ('file', 'line') AND raw NOT LIKE '{vault.PREFIX}%'""",
}


def _sensitive_values(con: duckdb.DuckDBPyConnection, pseudonym_key: bytes) -> pl.DataFrame:
    """Every identifier, name, phone and address of a patient in raw, revealed from the vault (in memory)."""
    values = con.sql(f"SELECT DISTINCT v AS value FROM ({_SENSITIVE_SQL}) WHERE v IS NOT NULL").pl()["value"]
    revealed = vault.reveal_series(values, pseudonym_key)
    return pl.DataFrame({"value": revealed}).filter(pl.col("value").str.len_chars() >= 4).unique()


def raw_identifier_hits(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...] | None = None,
                        pseudonym_key: bytes | None = None, tokens: bool = False) -> dict[str, int]:
    """Text columns of `schemas` (default: every schema but raw) holding a patient identifier, name, phone or
    address of a raw Patient, or anything shaped like an insurance member id — or, with `tokens`, a sealed
    one (a view over raw that selects an identifier gets its vault token: still a linkable identifier); and,
    when raw is in scope, identifying values of raw or unparsed quarantine text that are not sealed.
    Expected: empty."""
    key = load_settings().pseudonym_key if pseudonym_key is None else pseudonym_key
    con.register("sensitive_frame", _sensitive_values(con, key))
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE sensitive_value AS SELECT value FROM sensitive_frame")
    finally:
        con.unregister("sensitive_frame")
    columns = con.execute(
        "SELECT schema_name, table_name, list(column_name ORDER BY column_index) FROM duckdb_columns() "
        "WHERE database_name = current_database() AND data_type IN ('VARCHAR', 'JSON') AND NOT internal "
        "AND (schema_name IN ? OR (? AND schema_name NOT IN ('raw', 'temp'))) GROUP BY ALL ORDER BY ALL",
        [list(schemas or ()), schemas is None]).fetchall()
    hits = {}
    for schema, table, names in columns:
        counts = con.execute("SELECT " + ", ".join(
            f'count_if("{c}"::VARCHAR IN (SELECT value FROM sensitive_value) '
            f'OR regexp_matches("{c}"::VARCHAR, ?)'
            + (f""" OR contains("{c}"::VARCHAR, '{vault.PREFIX}'))""" if tokens else ")")
            for c in names) + f' FROM "{schema}"."{table}"',
            [MEMBER_ID_RE] * len(names)).fetchone()
        hits |= {f"{schema}.{table}.{c}": n for c, n in zip(names, counts, strict=True) if n}
    if schemas is None or "raw" in schemas:
        for name, sql in _UNSEALED_SQL.items():
            n = con.execute(sql).fetchone()[0]
            if n:
                hits[name] = n
    return hits
