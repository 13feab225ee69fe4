"""Appending frames to layer tables whose columns are defined by the frame (staging) or by DDL (core)."""

import duckdb
import polars as pl


def append(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> int:
    """Insert `frame` by column name, creating `table` from the frame's schema the first time."""
    con.register("_append_frame", frame)
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM _append_frame LIMIT 0")
        if frame.height:
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _append_frame")
    finally:
        con.unregister("_append_frame")
    return frame.height
