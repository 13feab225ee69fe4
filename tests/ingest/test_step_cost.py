"""Issue 7: a step's cost follows its rows. A step whose window holds none of its rows only moves its watermark
(no flatten, contract or append) — and every shortcut leaves the warehouse the full path leaves: the same
rows, quarantine rows, outcomes and watermarks."""

import shutil

import pytest

from pipelines.config import load_settings
from pipelines.consent import intervals
from pipelines.generate import generate
from pipelines.ingest import checkups, documents, flatten, lines, resources, upsert
from pipelines.ingest.checks import records_without_outcome
from pipelines.ingest.landing import INBOX_FOLDERS
from pipelines.ingest.run import ingest
from pipelines.warehouse import connect
from tests.conftest import run_ingest
from tests.ingest.test_idempotent import fingerprints


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A warehouse holding a small sample, and two increments: a whole one (bundles, lines, registry) and
    one of consent lines only."""
    root = tmp_path_factory.mktemp("step_cost")
    generate(root / "inbox", facilities=6, patients=12, seed=3, fault_rate=0.05)
    generate(root / "increment", facilities=6, patients=2, seed=1003, fault_rate=0.05)
    _, con = run_ingest(root / "inbox", root / "base.duckdb")
    con.close()
    return root


def _inbox_with(root, name: str, folders) -> object:
    inbox = root / name
    if not inbox.exists():
        shutil.copytree(root / "inbox", inbox)
        for folder in folders:
            if (root / "increment" / folder).is_dir():
                shutil.copytree(root / "increment" / folder, inbox / folder / "increment")
    return inbox


def _force_full_path(monkeypatch) -> None:
    """Every step does what it did before the shortcuts: flatten, validate and append even an empty window."""
    monkeypatch.setattr(resources, "raw_pending", lambda *args: True)
    monkeypatch.setattr(lines, "_nothing_to_stage", lambda *args: False)
    monkeypatch.setattr(documents, "_nothing_to_stage", lambda *args: False)
    monkeypatch.setattr(upsert, "_pending", lambda *args: True)
    monkeypatch.setattr(intervals, "rows_pending", lambda *args: True)
    monkeypatch.setattr(checkups, "_nothing_to_stage", lambda *args: False)


def _state(path) -> dict:
    con = connect(path, read_only=True)
    try:
        ledgers = {
            "watermarks": con.execute("SELECT consumer, last_id FROM ops.watermark ORDER BY ALL").fetchall(),
            "quarantine": con.execute(
                "SELECT raw_id, bundle_key, file_id, line_no, scope, rule_id, message, record_count "
                "FROM ops.quarantine ORDER BY ALL").fetchall(),
        }
    finally:
        con.close()
    return {"tables": fingerprints(path), **ledgers}


def _recording_flatten(monkeypatch) -> list[str]:
    """Names of the views flattened from now on."""
    flattened: list[str] = []
    real = flatten._compiled_for

    def recording(con, name, carry):
        flattened.append(name)
        return real(con, name, carry)

    monkeypatch.setattr(flatten, "_compiled_for", recording)
    return flattened


def test_whole_increment_same_as_the_full_path(loaded, monkeypatch):
    inbox = _inbox_with(loaded, "inbox_whole", INBOX_FOLDERS)
    fast, full = _ingest_both_ways(loaded, inbox, "whole", monkeypatch)
    assert _state(fast) == _state(full)


def test_consent_only_increment_skips_the_other_steps(loaded, monkeypatch):
    """Only the consent step flattens; every other step just moves its watermark — to where the full path
    moves it, leaving the same warehouse."""
    inbox = _inbox_with(loaded, "inbox_consent", ("consent",))
    flattened = _recording_flatten(monkeypatch)
    fast, full = _ingest_both_ways(loaded, inbox, "consent", monkeypatch, flattened)
    assert set(flattened) == {"consent"}
    con = connect(fast, read_only=True)
    try:
        watermarks = dict(con.execute("SELECT consumer, last_id FROM ops.watermark").fetchall())
        raw_top = con.execute("SELECT max(raw_id) FROM raw.resource").fetchone()[0]
    finally:
        con.close()
    moved = {name for name, last_id in watermarks.items() if last_id == raw_top}
    assert {"staging.condition", "staging.allergy", "staging.observation", "staging.medication_request",
            "staging.document", "staging.consent", "staging.access_event", "staging.facility", "core.condition",
            "core.allergy", "core.lab_result", "core.document", "core.consent_event",
            "core.consent_interval"} <= moved
    assert _state(fast) == _state(full)


def _ingest_both_ways(root, inbox, name: str, monkeypatch, flattened: list[str] | None = None):
    """The increment ingested into two copies of the base warehouse: with the shortcuts, and without."""
    fast, full = root / f"fast_{name}.duckdb", root / f"full_{name}.duckdb"
    for path in (fast, full):
        shutil.copy(root / "base.duckdb", path)
    summary_fast, con = run_ingest(inbox, fast)
    assert records_without_outcome(con) == 0
    con.close()
    if flattened is not None:
        flattened_fast = list(flattened)
    with monkeypatch.context() as patched:
        _force_full_path(patched)
        summary_full, con = run_ingest(inbox, full)
        con.close()
    if flattened is not None:
        flattened[:] = flattened_fast
    assert summary_fast["records_in"] > 0
    run_only = ("batch_id", "warehouse")
    assert {k: v for k, v in summary_fast.items() if k not in run_only} == \
        {k: v for k, v in summary_full.items() if k not in run_only}
    return fast, full


@pytest.mark.parametrize("lanes", ["1", "2"])
def test_a_run_leaves_no_temp_table_on_the_callers_connection(loaded, monkeypatch, lanes):
    """What a step builds for itself (landing's row per inbox file, an upsert's incoming rows) is gone when the
    run ends, on one lane (every step on the caller's connection) as on two: the caller's connection does not
    carry a run's working tables into the next one. A temp table of the caller's own is left alone."""
    monkeypatch.setenv("KARTE_INGEST_LANES", lanes)
    inbox = _inbox_with(loaded, "inbox_whole", INBOX_FOLDERS)
    shutil.copy(loaded / "base.duckdb", loaded / f"temps{lanes}.duckdb")
    con = connect(loaded / f"temps{lanes}.duckdb")
    try:
        con.execute("CREATE TEMP TABLE callers_own AS SELECT 1 AS x")
        summary = ingest(con, load_settings(warehouse=loaded / f"temps{lanes}.duckdb", inbox=inbox))
        assert summary.files_ingested > 0
        assert con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall() == [("callers_own",)]
        assert con.execute("SELECT count(*) FROM duckdb_views() WHERE temporary AND NOT internal").fetchone()[0] == 0
    finally:
        con.close()
