"""What the adoption report keeps between runs, so a report over the national warehouse (1.9 million bundles,
14.5 million records) reads per-institution aggregates instead of dating every bundle again:

    reports.adoption_submission_day   grain: institution × day with at least one accepted bundle
    reports.adoption_category_first   grain: institution × kind of information — the first day it passed validation
    reports.adoption_records_day      grain: institution × day — records received, records that passed
    reports.adoption_state            grain: one row — the read position (every file with file_id ≤ it is in the
                                      three tables above) and how many files were below it then

refresh_facts(con) moves the read position forward over finished files only (ops.file_manifest.reported_batch_id
set: every record of theirs has its outcome, which never changes afterwards, ops.record_outcome's key), to just
before the first file no run has finished yet, so a file killed mid-run is computed by the report until a run
finishes it. Every fact belongs to one file (pipelines/reports/adoption/facts.py), so the stored facts and those of
the files after the position combine by union, minimum and sum: the report equals a computation from scratch
whether or not the refresh ran, and the refresh only keeps the remainder small. If the files below the position
are not the ones counted then (rows deleted or added by hand: the counts differ), the stored rows are ignored.
"""

from dataclasses import dataclass

import duckdb

from pipelines.reports.adoption.facts import EVERY_FILE, FileRange, build_facility, compute_file_facts
from pipelines.reports.stored_state import state_row
from pipelines.warehouse import transaction

STATE_TABLES = ("adoption_submission_day", "adoption_category_first", "adoption_records_day", "adoption_state")
#: the three facts: table suffix → (key columns, how two rows of one key combine)
FACTS = {
    "submission_day": (("institution_number", "day"), ""),
    "category_first": (("institution_number", "category"), "min(first_day) AS first_day"),
    "records_day": (("institution_number", "day"),
                    "sum(received)::BIGINT AS received, sum(passed)::BIGINT AS passed"),
}


@dataclass(frozen=True)
class FactsState:
    file_id: int  # files with file_id ≤ this are in the stored facts
    files: int  # … and there were this many of them


EMPTY = FactsState(0, 0)


def stored_state(con: duckdb.DuckDBPyConnection) -> FactsState:
    """The read position of the stored facts, if they still describe the warehouse; EMPTY otherwise (never
    refreshed, a warehouse from before them, or files below the position deleted or added since)."""
    row = state_row(con, STATE_TABLES, "SELECT file_id, files FROM reports.adoption_state")
    if row is None:
        return EMPTY
    state = FactsState(*row)
    now = con.execute(f"SELECT count(*) FROM ops.file_manifest WHERE file_id <= {state.file_id}").fetchone()[0]
    return state if now == state.files else EMPTY


def describe(con: duckdb.DuckDBPyConnection, state: FactsState) -> str:
    """One line for the report's inputs: what it read from the stored facts and what it computed itself."""
    if state == EMPTY:
        return "no stored adoption facts in use: every file's facts computed for this report"
    refreshed = con.execute("SELECT refreshed_at FROM reports.adoption_state").fetchone()[0]
    newer = con.execute(f"SELECT count(*) FROM ops.file_manifest WHERE file_id > {state.file_id}").fetchone()[0]
    return (f"stored adoption facts through file_id {state.file_id} (refreshed {refreshed:%Y-%m-%d %H:%M} UTC); "
            f"{newer} later files computed for this report")


def build_facts(con: duckdb.DuckDBPyConnection) -> FactsState:
    """(Re)create the report's adoption_* TEMP tables on `con`: the stored facts where they still describe the
    warehouse, with the files after their read position computed now; every file computed now when nothing usable
    is stored. Returns the state read (what describe() reports)."""
    build_facility(con)
    state = stored_state(con)
    if state == EMPTY:
        compute_file_facts(con, EVERY_FILE, into="adoption")
    else:
        compute_file_facts(con, FileRange(after=state.file_id), into="adoption_fresh")
        combine_with_stored(con, fresh="adoption_fresh", into="adoption")
    return state


def combine_with_stored(con: duckdb.DuckDBPyConnection, fresh: str, into: str) -> None:
    """TEMP tables {into}_<fact>: the stored facts combined with the TEMP tables {fresh}_<fact>. The stored rows of
    keys the fresh facts do not touch (nearly all) pass through as they are; regrouping them all cost 0.5 s at
    national scale."""
    for fact, (keys, combined) in FACTS.items():
        table, fresh_table = f"reports.adoption_{fact}", f"{fresh}_{fact}"
        untouched = f"SELECT s.* FROM {table} s ANTI JOIN {fresh_table} f ON {_same_key(keys)}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {into}_{fact} AS {untouched} UNION ALL "
                    f"{_combined_sql((_touched(table, fresh_table, keys), fresh_table), keys, combined)}")


def _same_key(keys: tuple[str, ...]) -> str:
    return " AND ".join(f"s.{key} = f.{key}" for key in keys)


def _touched(table: str, fresh: str, keys: tuple[str, ...]) -> str:
    """The rows of `table` (alias s) whose key is in `fresh` (alias f), as a subquery."""
    return f"(SELECT s.* FROM {table} s SEMI JOIN {fresh} f ON {_same_key(keys)})"


def _combined_sql(sources: tuple[str, ...], keys: tuple[str, ...], combined: str) -> str:
    """One row per key over the rows of `sources` (tables or subqueries of one fact)."""
    both = " UNION ALL ".join(f"SELECT * FROM {source}" for source in sources)
    if not combined:  # a set of keys
        return f"SELECT DISTINCT * FROM ({both})"
    return f"SELECT {', '.join(keys)}, {combined} FROM ({both}) GROUP BY ALL"


def _next_position(con: duckdb.DuckDBPyConnection) -> int:
    """The last file_id before the first file no run has finished (or the last file_id when all are finished)."""
    return con.execute("""
        SELECT coalesce((SELECT min(file_id) - 1 FROM ops.file_manifest WHERE reported_batch_id IS NULL),
                        (SELECT max(file_id) FROM ops.file_manifest), 0)""").fetchone()[0]


def refresh_facts(con: duckdb.DuckDBPyConnection, through_file_id: int | None = None) -> dict:
    """Bring the stored facts up to date (or up to `through_file_id`), in one transaction. Returns the files added
    and the new read position."""
    with transaction(con):
        _create_tables(con)
        state = stored_state(con)
        if state == EMPTY:  # nothing usable stored: start again from nothing
            for table in STATE_TABLES:
                con.execute(f"DELETE FROM reports.{table}")
        upto = _next_position(con)
        if through_file_id is not None:
            upto = min(upto, int(through_file_id))
        upto = max(upto, state.file_id)
        added = con.execute(f"SELECT count(*) FROM ops.file_manifest WHERE file_id > {state.file_id} "
                            f"AND file_id <= {upto}").fetchone()[0]
        if added:
            compute_file_facts(con, FileRange(after=state.file_id, through=upto), into="adoption_refresh")
            for fact, (keys, combined) in FACTS.items():
                _merge(con, fact, keys, combined)
        files = con.execute(f"SELECT count(*) FROM ops.file_manifest WHERE file_id <= {upto}").fetchone()[0]
        con.execute("DELETE FROM reports.adoption_state")
        con.execute(f"INSERT INTO reports.adoption_state VALUES ({upto}, {files}, now())")
    return {"files_added": added, "file_id": upto, "files": files}


def _merge(con: duckdb.DuckDBPyConnection, fact: str, keys: tuple[str, ...], combined: str) -> None:
    """Fold TEMP adoption_refresh_<fact> into reports.adoption_<fact>, so a key keeps one row however many
    refreshes added to it (a late bundle can add to an old day)."""
    table, fresh = f"reports.adoption_{fact}", f"adoption_refresh_{fact}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE adoption_refresh_merged AS "
                f"{_combined_sql((_touched(table, fresh, keys), fresh), keys, combined)}")
    con.execute(f"DELETE FROM {table} s USING {fresh} f WHERE {_same_key(keys)}")
    con.execute(f"INSERT INTO {table} SELECT * FROM adoption_refresh_merged")


def _create_tables(con: duckdb.DuckDBPyConnection) -> None:
    # here rather than in schema.sql, as the audit's: only this module writes them, and a report on a warehouse
    # without them simply computes everything (stored_state → EMPTY)
    con.execute("""
        CREATE TABLE IF NOT EXISTS reports.adoption_submission_day (institution_number VARCHAR, day DATE);
        CREATE TABLE IF NOT EXISTS reports.adoption_category_first (institution_number VARCHAR, category VARCHAR,
                                                                    first_day DATE);
        CREATE TABLE IF NOT EXISTS reports.adoption_records_day (institution_number VARCHAR, day DATE,
                                                                 received BIGINT, passed BIGINT);
        CREATE TABLE IF NOT EXISTS reports.adoption_state (file_id BIGINT, files BIGINT, refreshed_at TIMESTAMPTZ)""")
