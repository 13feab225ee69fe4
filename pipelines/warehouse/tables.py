"""Creates the core tables (their DDL is the contract later layers and reports rely on)."""

from pathlib import Path

import duckdb

CORE_SQL = (Path(__file__).parent / "core.sql").read_text(encoding="utf-8")


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    from pipelines.consent.read_path import create_read_path

    con.execute(CORE_SQL)
    create_read_path(con)
