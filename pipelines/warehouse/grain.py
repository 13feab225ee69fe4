"""The grain of the tables that have a row per file, bundle or record, checked instead of enforced by a key.

A key is an ART index: DuckDB rewrites it at every checkpoint that touches its table, so each run's close paid
for every keyed table it appended to, more as the table grew (docs/capacity_history.md, fifteenth session). The
statements that write these tables keep their grain (landing adds only unseen hashes, the raw step numbers
bundles past the largest key, each step records outcomes for raw ids past its watermark that have none); the
blocking asset checks beside their assets call `repeated_keys` over the rows a run wrote, which is what a key
would have refused.
"""

from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class Grain:
    """`table` holds one row per value of `key`; `written_after` is a column that only grows as rows are added,
    so a run's rows are those past its value before the run; `name` names the asset check."""

    name: str
    table: str
    key: tuple[str, ...]
    written_after: str


FILE_ID = Grain("one_row_per_file_id", "ops.file_manifest", ("file_id",), "file_id")
FILE_CONTENT = Grain("one_row_per_content", "ops.file_manifest", ("sha256",), "file_id")
RAW_BUNDLE = Grain("one_row_per_bundle", "raw.bundle", ("bundle_key",), "bundle_key")
STAGED_BUNDLE = Grain("one_row_per_bundle", "staging.bundle", ("bundle_key",), "bundle_key")
FAST_STRUCTURE_VERDICT = Grain("one_fast_verdict_per_resource", "staging.fast_structure_check", ("raw_id",), "raw_id")
STRUCTURE_FAILURE = Grain("one_failure_per_resource", "staging.structure_failure", ("raw_id",), "raw_id")
RECORD_OUTCOME = Grain("one_outcome_per_record", "ops.record_outcome", ("raw_id",), "raw_id")

GRAINS = (FILE_ID, FILE_CONTENT, RAW_BUNDLE, STAGED_BUNDLE, FAST_STRUCTURE_VERDICT, STRUCTURE_FAILURE, RECORD_OUTCOME)


def high_water(con: duckdb.DuckDBPyConnection, grain: Grain) -> int:
    """The largest `written_after` value in the table now (0 when empty): pass it to `repeated_keys` after a
    run to check only what the run wrote."""
    return con.execute(f"SELECT coalesce(max({grain.written_after}), 0) FROM {grain.table}").fetchone()[0]


def repeated_keys(con: duckdb.DuckDBPyConnection, grain: Grain, after: int = 0) -> int:
    """How many key values occur on more than one row, among the keys of the rows whose `written_after` is past
    `after` (0: the whole table); their other rows are found by key, whatever their age. So a new file row
    repeating an old hash is seen (it has a new file id); where the key is itself `written_after` (raw ids,
    bundle keys), the keys looked at are those past `after`, which are the ones a run writes: each step writes
    raw ids past its watermark."""
    key = ", ".join(grain.key)
    # where the key is the growing column, a key's other rows lie past `after` too: the check reads the run's
    # rows only, not the whole table (a record outcome per raw record ever ingested, at national scale)
    rows = (f"{grain.written_after} > ?" if grain.key == (grain.written_after,) else
            f"({key}) IN (SELECT {key} FROM {grain.table} WHERE {grain.written_after} > ?)")
    return con.execute(f"""
        SELECT count(*) FROM (SELECT 1 FROM {grain.table} WHERE {rows} GROUP BY {key} HAVING count(*) > 1)""",
                       [after]).fetchone()[0]
