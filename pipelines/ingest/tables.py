"""Appending frames to layer tables whose columns are defined by the frame (staging) or by DDL (core)."""

from collections.abc import Iterable

import duckdb
import polars as pl


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """Columns of `table` in order; empty when it does not exist. Binding the table is ~0.1 ms where a
    duckdb_columns() query is several (it lists every column of the catalog)."""
    try:
        return con.table(table).columns
    except duckdb.CatalogException:
        return []


def tables_hold(con: duckdb.DuckDBPyConnection, columns: dict[str, Iterable[str]]) -> bool:
    """Whether every table of `columns` exists with (at least) those columns: what appending an empty frame
    of them would leave. A step with nothing to append may then skip the append (and the work before it)."""
    return all(set(wanted) <= set(table_columns(con, table)) for table, wanted in columns.items())


def append(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> int:
    """Insert `frame` by column name, creating `table` from the frame's schema the first time and adding the
    columns a newer contract brought (a warehouse made by an older Karte keeps working)."""
    con.register("_append_frame", frame)
    try:
        existing = set(table_columns(con, table))
        if not existing:
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM _append_frame LIMIT 0")
        elif set(frame.columns) - existing:
            for column, dtype, *_ in con.execute("DESCRIBE SELECT * FROM _append_frame").fetchall():
                if column not in existing:
                    con.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {dtype}')
        if frame.height:
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _append_frame")
    finally:
        con.unregister("_append_frame")
    return frame.height
