"""Windows over raw ids that never split a bundle: a document's Composition, its sections' entries and a
checkup panel's members must reach a staging step together."""

from collections.abc import Iterator

import duckdb

from pipelines.warehouse import windows


def raw_windows(con: duckdb.DuckDBPyConnection, lo: int, hi: int) -> Iterator[tuple[int, int]]:
    def bundle_end(end: int) -> int:
        row = con.execute("SELECT max(last_raw_id) FROM raw.bundle WHERE first_raw_id <= ? AND last_raw_id > ?",
                          [end, end]).fetchone()
        return row[0] or end

    return windows(lo, hi, align=bundle_end)
