"""Appending frames to layer tables whose columns are defined by the frame (staging) or by DDL (core)."""

import duckdb
import polars as pl


def append(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> int:
    """Insert `frame` by column name, creating `table` from the frame's schema the first time and adding the
    columns a newer contract brought (a warehouse made by an older Karte keeps working)."""
    con.register("_append_frame", frame)
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM _append_frame LIMIT 0")
        schema, name = table.split(".")
        existing = {c for (c,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?", [schema, name]
        ).fetchall()}
        for column, dtype, *_ in con.execute("DESCRIBE SELECT * FROM _append_frame").fetchall():
            if column not in existing:
                con.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {dtype}')
        if frame.height:
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _append_frame")
    finally:
        con.unregister("_append_frame")
    return frame.height
