"""Windows over raw ids that never split a bundle: a document's Composition, its sections' entries and a
checkup panel's members must reach a staging step together."""

from collections.abc import Iterator

import duckdb

from pipelines.warehouse import windows

#: a window holds at most this many rows of a `heavy_type` (below): ids alone do not bound memory when one row
#: is a 特定健診 CDA document (15–60 kB sealed in generated data, 86 kB the largest official example) rather
#: than a ~1 kB FHIR resource. Counted, not measured: reading the documents' lengths cost as much memory as
#: staging them (134 MiB for 3,842 documents)
HEAVY_ROWS_PER_WINDOW = 500


def raw_windows(con: duckdb.DuckDBPyConnection, lo: int, hi: int, heavy_type: str | None = None,
                heavy_rows: int | None = None) -> Iterator[tuple[int, int]]:
    """(lo, hi] in windows of about window_ids() ids, moved forward so no bundle is split; with `heavy_type`
    (a raw resource_type), also cut so that no window holds more than `heavy_rows` (default
    HEAVY_ROWS_PER_WINDOW) of that type's rows."""
    def bundle_end(end: int) -> int:
        row = con.execute("SELECT max(last_raw_id) FROM raw.bundle WHERE first_raw_id <= ? AND last_raw_id > ?",
                          [end, end]).fetchone()
        return row[0] or end

    cuts = _heavy_cuts(con, lo, hi, heavy_type, heavy_rows or HEAVY_ROWS_PER_WINDOW) if heavy_type else []
    for start, end in windows(lo, hi, align=bundle_end):
        # a heavy row is never part of a bundle (documents come from archives), so cutting after one is safe
        for cut in (c for c in cuts if start < c < end):
            yield start, cut
            start = cut
        yield start, end


def _heavy_cuts(con: duckdb.DuckDBPyConnection, lo: int, hi: int, resource_type: str, every: int) -> list[int]:
    """The raw id of every `every`-th `resource_type` row in (lo, hi]."""
    return [cut for (cut,) in con.execute(
        """SELECT raw_id FROM (
               SELECT raw_id, row_number() OVER (ORDER BY raw_id) AS n
               FROM raw.resource WHERE resource_type = ? AND raw_id > ? AND raw_id <= ?)
           WHERE n % ? = 0 ORDER BY 1""", [resource_type, lo, hi, every]).fetchall()]


def first_bundle(con: duckdb.DuckDBPyConnection, lo: int) -> int:
    """The lowest bundle key with an entry past raw id `lo` (0 when none). Bundles are numbered in raw id order,
    so the rows of a window (lo, hi] join only staging.bundle rows from this key on: given as a constant, it lets
    DuckDB skip older bundles' row groups, where the join alone read every bundle ever staged (the observation
    stage's flatten at 16 × the bench sample: 24.7 -> 13.1 ms, for a 0.8 ms lookup; growing with the warehouse)."""
    return con.execute("SELECT coalesce(min(bundle_key), 0) FROM raw.bundle WHERE last_raw_id > ?",
                       [lo]).fetchone()[0]
