"""Warehouse-wide invariants, as pure functions the asset checks and the tests both call."""

import duckdb

from pipelines.validation.ig_rules import MEMBER_ID_RE


def records_without_outcome(con: duckdb.DuckDBPyConnection) -> int:
    """Raw records that have not ended anywhere (a loaded row, a duplicate, a tombstone or quarantine)."""
    return con.execute("SELECT count(*) FROM raw.resource ANTI JOIN ops.record_outcome USING (raw_id)").fetchone()[0]


def outcome_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(con.execute("SELECT outcome, count(*) FROM ops.record_outcome GROUP BY ALL").fetchall())


_SENSITIVE_SQL = """
    CREATE OR REPLACE TEMP TABLE sensitive_value AS
    SELECT DISTINCT v AS value FROM (
        SELECT unnest(json_extract_string(resource, '$.identifier[*].value')) AS v FROM raw.resource
            WHERE resource_type = 'Patient'
        UNION ALL SELECT unnest(json_extract_string(resource, '$.name[*].text')) FROM raw.resource
            WHERE resource_type = 'Patient'
        UNION ALL SELECT unnest(json_extract_string(resource, '$.telecom[*].value')) FROM raw.resource
            WHERE resource_type = 'Patient'
        UNION ALL SELECT unnest(json_extract_string(resource, '$.address[*].text')) FROM raw.resource
            WHERE resource_type = 'Patient'
        UNION ALL SELECT json_extract_string(resource, '$.patient.identifier.value') FROM raw.resource
            WHERE resource_type = 'Consent'
    ) WHERE v IS NOT NULL AND length(v) >= 4
"""


def raw_identifier_hits(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...] = ("core", "shared", "reports")
                        ) -> dict[str, int]:
    """Columns of `schemas` holding a patient identifier, name, phone or address seen in raw Patients,
    or anything shaped like an insurance member id. Expected: empty."""
    con.execute(_SENSITIVE_SQL)
    columns = con.execute(
        "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
        "WHERE schema_name IN ? AND data_type = 'VARCHAR' AND NOT internal",
        [list(schemas)]).fetchall()
    hits = {}
    for schema, table, column in columns:
        n = con.execute(
            f'SELECT count(*) FROM {schema}.{table} WHERE "{column}" IN (SELECT value FROM sensitive_value) '
            f'OR regexp_matches("{column}", ?)', [MEMBER_ID_RE]).fetchone()[0]
        if n:
            hits[f"{schema}.{table}.{column}"] = n
    return hits
