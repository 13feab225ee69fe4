"""Cheap existence queries: whether a step's window holds any of its rows at all. An increment touches few
resource types, and a step whose window holds none of its rows then only advances its watermark (the query
takes under a millisecond; the watermark's own transaction a few) instead of flattening, validating and
appending nothing (tens of milliseconds)."""

import duckdb


def raw_pending(con: duckdb.DuckDBPyConnection, resource_type: str, lo: int, hi: int) -> bool:
    """Whether raw.resource holds a `resource_type` row with raw_id in (lo, hi]."""
    return con.execute(
        "SELECT EXISTS (SELECT 1 FROM raw.resource WHERE resource_type = ? AND raw_id > ? AND raw_id <= ?)",
        [resource_type, lo, hi]).fetchone()[0]


def rows_pending(con: duckdb.DuckDBPyConnection, table: str, lo: int, hi: int) -> bool:
    """Whether `table` (a staging or core table; it must exist) holds a row with raw_id in (lo, hi]."""
    return con.execute(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE raw_id > ? AND raw_id <= ?)",
                       [lo, hi]).fetchone()[0]
