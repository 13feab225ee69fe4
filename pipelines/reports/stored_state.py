"""The one-row state tables of the reports' stored aggregates (schema `reports`: the audit's counts and coverage,
the adoption report's facts), read the same way by both."""

import duckdb


def state_row(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...], query: str) -> tuple | None:
    """The row `query` reads from a state table, or None when it has none or any of `tables` (in schema `reports`)
    is missing — a warehouse from before them, or one never refreshed."""
    present = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'reports' AND table_name IN "
                          f"({', '.join(repr(t) for t in tables)})").fetchone()[0]
    if present < len(tables):
        return None
    return con.execute(query).fetchone()
