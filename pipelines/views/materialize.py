"""Analyst views over the warehouse: what a view reads and how its ``views.<name>`` table is (re)built.

A view reads ``raw.resource`` — the verbatim FHIR — restricted to records that reached core: outcome
``loaded`` (the accepted versions) or ``tombstoned`` (entered-in-error, so analysts can see retractions).
Quarantined records are excluded: they broke an IG rule or a contract and analysts would otherwise count
what the warehouse itself rejected. Duplicates (a resend of a version already loaded) are excluded too, so
each accepted version appears once. Superseded versions stay (they were loaded in their time); join
``core.<table> USING (raw_id)`` to keep only the current version of each resource.
"""

from __future__ import annotations

import duckdb

from .catalog import CatalogView
from .compiler import compile_view
from .fhirpath import sql_str

__all__ = ["REACHED_CORE", "SCHEMA", "build_view_table", "raw_identifier_columns", "source_sql"]

SCHEMA = "views"

#: record outcomes whose raw record a view may read (see the module docstring)
REACHED_CORE = ("loaded", "tombstoned")


def source_sql(resource_type: str) -> str:
    """The raw records of ``resource_type`` that reached core, as a relation (raw_id, resource)."""
    outcomes = ", ".join(sql_str(o) for o in REACHED_CORE)
    # resource_type is the column raw ingest copied from the JSON: filtering on it first lets DuckDB skip
    # parsing every other record; the compiled view still checks resourceType itself.
    return (
        f"(SELECT r.raw_id, r.resource FROM raw.resource r WHERE r.resource_type = {sql_str(resource_type)} "
        f"AND r.raw_id IN (SELECT raw_id FROM ops.record_outcome WHERE outcome IN ({outcomes})))"
    )


def build_view_table(con: duckdb.DuckDBPyConnection, entry: CatalogView) -> int:
    """Replace ``views.<name>`` with the view's rows (raw_id first); returns the row count.

    One transaction: readers see the old table or the new one, never a half-built one. Column comments
    carry the view's descriptions, so ``duckdb_columns()`` documents the table too.
    """
    table = f'{SCHEMA}."{entry.name}"'
    sql = compile_view(entry.view, source_sql(entry.resource_type), carry=("raw_id",))
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        con.execute(f"CREATE OR REPLACE TABLE {table} AS {sql}")
        con.execute(f"COMMENT ON TABLE {table} IS {sql_str(entry.description)}")
        con.execute(f"COMMENT ON COLUMN {table}.raw_id IS "
                    f"{sql_str('raw.resource row of this row (join core.* USING (raw_id))')}")
        for column in entry.columns:
            if column.description:
                con.execute(f'COMMENT ON COLUMN {table}."{column.name}" IS {sql_str(column.description)}')
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return rows


def raw_identifier_columns(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, int]:
    """Text columns of ``views.<name>`` holding a patient identifier, name, phone or address, raw or sealed (or
    anything shaped like an insurance member id): {column: rows}. Views read raw, where identifiers are sealed:
    a view selecting one gets its vault token, which is refused too (it still links the rows of one person)."""
    from pipelines.ingest.checks import raw_identifier_hits

    prefix = f"{SCHEMA}.{name}."
    return {key[len(prefix):]: n for key, n in raw_identifier_hits(con, (SCHEMA,), tokens=True).items()
            if key.startswith(prefix)}
