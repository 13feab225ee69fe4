"""Issue 7: what a run reads follows what arrived, not what the warehouse holds. Every statement of a small
increment on a warehouse many times its size is profiled (EXPLAIN ANALYZE) as it runs; no table scan may pass on
more rows than the increment holds, but the few listed below, which need an index to avoid and cost a few ms at
16 × the bench sample (docs/capacity_history.md, eighteenth session). The same profile over a 16 × warehouse found
what was bounded since: the bundle step's upper bound read every bundle ever landed (caught here on the code
before), the checkup step's group Observations joined every staged bundle, the quarantine copy hashed the whole
file manifest.
A scan is seen by the rows it passes on: row groups a Parquet scan opens and then filters out entirely (the bundle
step's outcome write read every lake file that way) are not; tests/ingest/test_lake_reads.py covers those."""

import re

import pytest

from pipelines.config import load_settings
from pipelines.generate import generate
from pipelines.ingest.landing import land_files
from pipelines.ingest.run import ingest_connection, processing_steps, run_summary, start_batch
from tests.ingest.watched import Watched, scans

#: (table, statement) scans allowed to read a whole table, and why
WHOLE_TABLE_READS = [
    # landing: content already landed is found by its hash among every file ever landed; the sighting cache is as
    # large as the inbox (an archive keeps both small)
    ("ops.file_manifest", r"^INSERT INTO ops\.file_(manifest|sighting) "),
    ("ops.file_sighting_cache", r"^SELECT path, size_bytes, mtime_ns, sha256 FROM ops\.file_sighting_cache"),
    # core: the current version of each staged identity (identities are not clustered: an index would be needed)
    (r"core\.\w+", r"^CREATE OR REPLACE TEMP TABLE winner_key "),
    # a patient's consent intervals are rebuilt from all of their events; examinees known only from checkups
    ("core.consent_event", r"^INSERT INTO core\.consent_interval "),
    ("core.patient", r"^INSERT INTO core\.patient \(patient_key, gender, birth_year, birth_month, raw_id\)"),
]


def _profiling(seen: list):
    """A `Watched` callback: (statement, its scans) of each statement that reads something (SELECT, INSERT …
    SELECT, CREATE … AS SELECT)."""
    def before(con, sql, params):
        text = " ".join(sql.split())
        if re.match(r"(SELECT|WITH|INSERT|CREATE (OR REPLACE )?(TEMP )?TABLE)\b", text) and "SELECT" in text \
                and "duckdb_" not in text and "_append_frame LIMIT 0" not in text:
            seen.append((text, scans(con, sql, params)))
    return before


@pytest.fixture(scope="module")
def increment(tmp_path_factory) -> tuple[list, int, int]:
    """(statements with their scans, records of the increment, records of the warehouse before it)."""
    root = tmp_path_factory.mktemp("reads")
    # tables of a few thousand rows: DuckDB filters a scan by zones of 2,048 rows, so a smaller table is read whole
    # by any query (the increment's limit below is at least one zone)
    generate(root / "inbox", facilities=20, patients=800, seed=11, fault_rate=0.05)
    generate(root / "increment", facilities=20, patients=4, seed=1011, fault_rate=0.3)
    warehouse, seen = root / "w.duckdb", []
    for inbox, profiled in ((root / "inbox", False), (root / "increment", True)):
        settings = load_settings(warehouse=warehouse, inbox=inbox)
        with ingest_connection(settings) as con:
            batch = start_batch(con, str(inbox))
            runner = Watched(con, _profiling(seen)) if profiled else con
            land_files(runner, inbox, batch)
            for _, step in processing_steps(settings):
                step(runner)
            run_summary(runner, batch, settings)
            counts = dict(con.execute("SELECT batch_id = ?, count(*) FROM raw.resource GROUP BY 1", [batch]).fetchall())
    return seen, counts[True], counts[False]


def _allowed(table: str, statement: str) -> bool:
    return any(re.fullmatch(pattern, table) and re.match(where, statement)
               for pattern, where in WHOLE_TABLE_READS)


#: DuckDB's zone: a scan passes on whole zones of rows when its filter is only a range
ZONE = 2048


def test_no_scan_of_an_increment_reads_what_the_warehouse_already_held(increment):
    seen, new, held = increment
    assert held > 4 * ZONE > 8 * new  # a warehouse many zones and increments large, so a whole-table read stands out
    too_much = [(table, rows, statement[:160]) for statement, found in seen for table, rows in found
                if rows > ZONE and not _allowed(table, statement)]
    assert too_much == []


def test_the_profile_sees_the_whole_table_reads_it_allows(increment):
    # not vacuous: the allowed reads do read whole tables here, and the lake and core are profiled
    seen = increment[0]
    scanned = {table for _, found in seen for table, _ in found}
    assert {"READ_PARQUET", "ops.file_manifest", "core.lab_result"} <= scanned
    assert any(rows > ZONE for statement, found in seen for table, rows in found if _allowed(table, statement))
