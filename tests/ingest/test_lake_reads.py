"""Issue 7: an ingest statement reads the raw lake's `resource` column (the JSON text, nine tenths of the lake's
bytes) only where it uses it. DuckDB 1.5.5 drops a Parquet scan's column pruning in some plans (a DISTINCT
beside the raw.resource view, duckdb/duckdb#22606): the outcome ledger's writes then decompressed every resource
text of their window to read a batch id (20.6 → 7.9 ms a statement in a 1 × full load)."""

import re

import pytest

from pipelines.config import load_settings
from pipelines.generate import generate
from pipelines.ingest.landing import land_files
from pipelines.ingest.quarantine import record_outcomes
from pipelines.ingest.run import ingest_connection, processing_steps, start_batch
from tests.ingest.watched import Watched, parquet_columns, scans

#: the column where the statement names it; `raw.resource` (the view) and resource_type, resource_id, … are not it
_USES_TEXT = re.compile(r"\bresource\b")


def _reads_resource_text(con, sql: str, params) -> bool:
    """Whether the plan of `sql` reads the lake's `resource` column (EXPLAIN, not run)."""
    return "resource" in parquet_columns(con, sql, params)


def _noting_text_reads(seen: list):
    """A `Watched` callback: (SQL, whether its plan reads the resource text) of each statement over raw.resource."""
    def before(con, sql, params):
        if "raw.resource" in sql and not sql.lstrip().upper().startswith(("CREATE OR REPLACE VIEW", "DROP")):
            seen.append((sql, _reads_resource_text(con, sql, params)))
    return before


@pytest.fixture(scope="module")
def statements(tmp_path_factory) -> list[tuple[str, bool]]:
    """(SQL, reads the resource text) of every statement over raw.resource in a full load of a faulty sample
    (quarantines, duplicates, checkup archives), its steps run one after another."""
    root = tmp_path_factory.mktemp("lake_reads")
    generate(root / "inbox", facilities=6, patients=20, seed=11, fault_rate=0.1)
    settings = load_settings(warehouse=root / "w.duckdb", inbox=root / "inbox")
    seen: list[tuple[str, bool]] = []
    with ingest_connection(settings) as con:
        land_files(con, settings.inbox, start_batch(con, str(settings.inbox)))
        for _, step in processing_steps(settings):
            step(Watched(con, _noting_text_reads(seen)))
    return seen


def test_no_statement_reads_resource_text_it_does_not_use(statements):
    wasteful = [sql for sql, reads in statements
                if reads and not _USES_TEXT.search(sql.replace("raw.resource", ""))]
    assert wasteful == []


def test_the_check_sees_the_statements_that_do_read_it(statements):
    # not vacuous: the flattening views and the quarantine copy read the text, and their plans say so
    reading = [sql for sql, reads in statements if reads]
    assert len(statements) > 40 and len(reading) > 10
    assert any("INSERT INTO ops.quarantine" in sql for sql in reading)
    assert any("INSERT INTO ops.record_outcome" in sql for sql, _ in statements)


def test_the_check_catches_the_unpruned_join(tmp_path):
    """The form record_outcomes had: raw.resource joined whole to a DISTINCT reads the text (the DuckDB behaviour
    this guards against); narrowed in its own subquery, it does not."""
    generate(tmp_path / "inbox", facilities=2, patients=3, seed=5, fault_rate=0.0)
    settings = load_settings(warehouse=tmp_path / "w.duckdb", inbox=tmp_path / "inbox")
    with ingest_connection(settings) as con:
        land_files(con, settings.inbox, start_batch(con, str(settings.inbox)))
        dict(processing_steps(settings))["raw.resource"](con)
        joined_whole = ("SELECT r.raw_id, r.batch_id FROM (SELECT DISTINCT raw_id FROM raw.resource) o "
                        "JOIN raw.resource r ON r.raw_id = o.raw_id WHERE r.raw_id > 0")
        narrowed = ("SELECT r.raw_id, r.batch_id FROM (SELECT DISTINCT raw_id FROM raw.resource) o "
                    "JOIN (SELECT raw_id, batch_id FROM raw.resource WHERE raw_id > 0) r ON r.raw_id = o.raw_id")
        assert _reads_resource_text(con, joined_whole, None)
        assert not _reads_resource_text(con, narrowed, None)
        seen: list[tuple[str, bool]] = []
        con.execute("BEGIN TRANSACTION")
        written = record_outcomes(Watched(con, _noting_text_reads(seen)), "SELECT raw_id FROM raw.resource", "loaded",
                                  None, (0, 10**9))
        con.execute("ROLLBACK")
        assert written > 0 and seen and not any(reads for _, reads in seen)


def test_an_increment_quarantines_without_reading_every_file_ever_received(tmp_path):
    """The quarantine copy names each failing record's file: joined whole, the manifest (one row per file ever
    received) was the side DuckDB built its hash table from (10 of 14 ms a statement at 16 × the sample). Its
    scan passes on only the failing records' files."""
    generate(tmp_path / "inbox", facilities=6, patients=20, seed=11, fault_rate=0.1)
    generate(tmp_path / "increment", facilities=6, patients=3, seed=1011, fault_rate=0.3)
    warehouse = tmp_path / "w.duckdb"
    scanned: list[list[int]] = []

    def profile_quarantine_copy(con, sql, params):
        if sql.lstrip().startswith("INSERT INTO ops.quarantine (batch_id, file_id, source_file, line_no, entry_index"):
            scanned.append([rows for table, rows in scans(con, sql, params) if table == "ops.file_manifest"])

    for inbox, watched in ((tmp_path / "inbox", False), (tmp_path / "increment", True)):
        settings = load_settings(warehouse=warehouse, inbox=inbox)
        with ingest_connection(settings) as con:
            land_files(con, inbox, start_batch(con, str(inbox)))
            runner = Watched(con, profile_quarantine_copy) if watched else con
            for _, step in processing_steps(settings):
                step(runner)
            files, batch = con.execute("SELECT count(*), max(batch_id) FROM ops.file_manifest").fetchone()
            increment_files = con.execute("SELECT count(*) FROM ops.file_manifest WHERE batch_id = ?",
                                          [batch]).fetchone()[0]
    assert scanned and files > 3 * increment_files
    assert all(scans and all(0 < rows <= increment_files for rows in scans) for scans in scanned), scanned
