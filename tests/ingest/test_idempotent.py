"""Re-running changes nothing; a run killed after any step, then re-run, ends with the same warehouse as
an uninterrupted run."""

import os
import subprocess
import sys

import pytest

from pipelines.config import load_settings
from pipelines.ingest.run import processing_steps
from pipelines.warehouse import connect
from tests.conftest import load_example, run_ingest, write_bundles

#: columns that say when or in which run something happened, not what the warehouse holds
RUN_COLUMNS = {"batch_id", "landed_at", "started_at", "finished_at", "reported_batch_id", "inbox"}
COMPARED_SCHEMAS = ("raw", "staging", "core")


def fingerprints(warehouse) -> dict[str, tuple[int, str]]:
    """(row count, order-independent hash) of every table in raw/staging/core plus the quarantine and
    outcome ledgers, leaving out run-bookkeeping columns."""
    con = connect(warehouse, read_only=True)
    try:
        # raw.resource is a view over the raw lake's files; its file list (raw.resource_file) is left out: the
        # files' names are random, their rows are what the view compares
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE (schema_name IN ? AND table_name <> 'resource_file') "
            "OR (schema_name = 'ops' AND table_name IN ('quarantine', 'record_outcome', 'file_manifest')) "
            "UNION ALL SELECT 'raw', 'resource' ORDER BY ALL",
            [list(COMPARED_SCHEMAS)]).fetchall()
        result = {}
        for schema, table in tables:
            cols = [c for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
                [schema, table]).fetchall() if c not in RUN_COLUMNS]
            row = ", ".join(f'"{c}"' for c in cols)
            result[f"{schema}.{table}"] = con.execute(
                f"SELECT count(*), coalesce(sum(hash(({row})))::VARCHAR, '0') FROM {schema}.{table}").fetchone()
        return result
    finally:
        con.close()


@pytest.fixture
def example_inbox(examples, inbox):
    bundles = {name: load_example(name) for name in (
        "Bundle-Bundle-CLINS-Observations-Example-01.json", "Bundle-Bundle-CLINS-Referral-Example-01.json",
        "Bundle-Bundle-CLINS-PCS-Example-01.json")}
    bundles["truncated.json"] = {"resourceType": "Bundle"}  # replaced below by a truncated file
    write_bundles(inbox, bundles)
    (inbox / "fhir" / "truncated.json").write_text('{"resourceType": "Bundle", "entry": [', encoding="utf-8")
    (inbox / "fhir" / "copy-of-obs.json").write_bytes(
        (inbox / "fhir" / "Bundle-Bundle-CLINS-Observations-Example-01.json").read_bytes())
    return inbox


def test_second_run_changes_nothing_and_says_so(example_inbox, warehouse):
    first, con = run_ingest(example_inbox, warehouse)
    con.close()
    before = fingerprints(warehouse)
    second, con = run_ingest(example_inbox, warehouse)
    con.close()
    assert first["files_ingested"] == 4 and first["files_skipped_duplicate"] == 1  # the byte-identical copy
    assert second["files_ingested"] == 0 and second["files_skipped_duplicate"] == 5
    assert second["records_in"] == 0
    assert fingerprints(warehouse) == before


def test_counts_in_equal_counts_out(example_inbox, warehouse):
    summary, con = run_ingest(example_inbox, warehouse)
    assert summary["records_in"] == (summary["records_loaded"] + summary["records_quarantined"]
                                     + summary["records_duplicate"] + summary["records_tombstoned"])
    assert summary["records_quarantined"] == 1  # the truncated file
    assert con.execute("SELECT count(*) FROM raw.resource ANTI JOIN ops.record_outcome USING (raw_id)").fetchone() == (0,)


STEP_NAMES = ["landing"] + [name for name, _ in processing_steps(load_settings())]


@pytest.mark.parametrize("crash_after", STEP_NAMES[::3] + [STEP_NAMES[-1]])
def test_killed_run_then_rerun_equals_uninterrupted(example_inbox, tmp_path, crash_after):
    clean = tmp_path / "clean.duckdb"
    run_ingest(example_inbox, clean)[1].close()

    crashed = tmp_path / "crashed.duckdb"
    code = (f"from tests.conftest import run_ingest; from pathlib import Path; "
            f"run_ingest(Path({str(example_inbox)!r}), Path({str(crashed)!r}))")
    env = {**os.environ, "KARTE_TEST_CRASH_AFTER": crash_after}
    died = subprocess.run([sys.executable, "-c", code], env=env, cwd=os.getcwd(), capture_output=True, check=False)
    assert died.returncode == 137, died.stderr.decode()[-2000:]
    summary, con = run_ingest(example_inbox, crashed)
    con.close()
    assert fingerprints(crashed) == fingerprints(clean)
    # the files the crashed run landed are reported by the run that completed them
    assert summary["records_in"] > 0 or crash_after == STEP_NAMES[-1]


def test_sigkill_at_arbitrary_points_then_rerun_equals_uninterrupted(tmp_path):
    """kill -9 mid-transaction (not only between steps): the next run rolls on to the same warehouse."""
    import signal
    import time

    from pipelines.generate import generate

    inbox = tmp_path / "inbox"
    generate(inbox, facilities=10, patients=150, seed=3, fault_rate=0.05)
    clean = tmp_path / "clean.duckdb"
    started = time.monotonic()
    run_ingest(inbox, clean)[1].close()
    duration = time.monotonic() - started

    crashed = tmp_path / "crashed.duckdb"
    code = (f"from tests.conftest import run_ingest; from pathlib import Path; "
            f"run_ingest(Path({str(inbox)!r}), Path({str(crashed)!r}))")
    for fraction in (0.3, 0.55, 0.8):
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=os.getcwd(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0 + duration * fraction)  # interpreter start-up, then a point inside the ingest
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run_ingest(inbox, crashed)[1].close()
    assert fingerprints(crashed) == fingerprints(clean)
