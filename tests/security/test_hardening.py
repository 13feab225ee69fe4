"""Issue 8 groundwork: production refuses the public key, files are owner-only, symlinks are not followed,
and `karte query` refuses every way out of read-only."""

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import load_example, write_bundles

KARTE = [sys.executable, "-m", "pipelines.cli"]


def karte(*args, env=None):
    return subprocess.run([*KARTE, *map(str, args)], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, **(env or {})})


def test_production_refuses_the_development_key(inbox, warehouse):
    done = karte("ingest", "--inbox", inbox, "--warehouse", warehouse, env={"KARTE_ENV": "production"})
    assert done.returncode == 1 and "KARTE_PSEUDONYM_KEY" in done.stderr
    assert done.stderr.strip().count("\n") == 0 and not warehouse.exists()
    ok = karte("ingest", "--inbox", inbox, "--warehouse", warehouse,
               env={"KARTE_ENV": "production", "KARTE_PSEUDONYM_KEY": "a-secret-only-the-operator-knows"})
    assert ok.returncode == 0, ok.stderr


def test_warehouse_and_reports_are_owner_only(examples, inbox, tmp_path):
    write_bundles(inbox, {"obs.json": load_example("Bundle-Bundle-CLINS-Observations-Example-01.json")})
    warehouse, reports = tmp_path / "private" / "w.duckdb", tmp_path / "reports"
    assert karte("ingest", "--inbox", inbox, "--warehouse", warehouse).returncode == 0
    assert karte("report", "quality", "--warehouse", warehouse, "--out", reports).returncode == 0
    raw_files = warehouse.with_name(warehouse.name + ".raw")  # raw.resource's Parquet (sealed, still private)
    assert list(raw_files.glob("*.parquet"))
    for path in [warehouse, warehouse.parent, raw_files, *raw_files.iterdir(), reports, *reports.iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_symlinks_in_the_inbox_are_quarantined_unread(inbox, warehouse):
    (inbox / "fhir").mkdir()
    secret = inbox.parent / "outside.json"
    secret.write_text('{"resourceType": "Bundle", "note": "秘密"}', encoding="utf-8")
    (inbox / "fhir" / "link.json").symlink_to(secret)
    done = karte("ingest", "--inbox", inbox, "--warehouse", warehouse, "--json")
    assert done.returncode == 0, done.stderr
    query = karte("query", "SELECT rule_id, coalesce(raw, '') FROM ops.quarantine", "--warehouse", warehouse)
    assert query.stdout.splitlines()[1:] == ["K-FILE-READ,"]


@pytest.mark.parametrize("sql", [
    "ATTACH '/tmp/other.duckdb' AS other", "INSTALL httpfs", "LOAD httpfs", "SET threads = 1",
    "PRAGMA enable_profiling", "SELECT * FROM read_text('/etc/hostname')", "SELECT * FROM glob('/etc/*')",
    "CHECKPOINT", "EXPORT DATABASE '/tmp/karte_export'",
])
def test_query_refuses_ways_out_of_read_only(examples, inbox, warehouse, sql):
    write_bundles(inbox, {"obs.json": load_example("Bundle-Bundle-CLINS-Observations-Example-01.json")})
    assert karte("ingest", "--inbox", inbox, "--warehouse", warehouse).returncode == 0
    refused = karte("query", sql, "--warehouse", warehouse)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr and "refused" in refused.stderr, sql


def test_write_failure_rolls_back_names_the_file_and_the_next_run_succeeds(examples, inbox, tmp_path, monkeypatch):
    """A disk-full / I/O error while a group of files is written: that group rolls back, the error names the
    file, nothing half-written remains, and the next run loads it — ending where an uninterrupted run ends."""
    import duckdb

    from pipelines.ingest import raw
    from tests.conftest import run_ingest
    from tests.ingest.test_idempotent import fingerprints

    write_bundles(inbox, {"obs.json": load_example("Bundle-Bundle-CLINS-Observations-Example-01.json")})
    clean = tmp_path / "clean.duckdb"
    run_ingest(inbox, clean)[1].close()

    def disk_full(*_args, **_kwargs):
        raise duckdb.IOException("IO Error: Could not write file: No space left on device")

    failing = tmp_path / "failing.duckdb"
    with monkeypatch.context() as patch:
        patch.setattr(raw, "_flush", disk_full)
        with pytest.raises(raw.RawWriteError, match=r"fhir/obs\.json.*No space left"):
            run_ingest(inbox, failing)
    con = duckdb.connect(str(failing))
    assert con.execute("SELECT count(*) FROM raw.resource").fetchone() == (0,)
    con.close()
    run_ingest(inbox, failing)[1].close()
    assert fingerprints(failing) == fingerprints(clean)


def test_two_ingests_at_once_one_exits_clearly_and_nothing_loads_twice(tmp_path):
    from pipelines.generate import generate

    inbox, warehouse = tmp_path / "inbox", tmp_path / "w.duckdb"
    generate(inbox, facilities=10, patients=150, seed=9, fault_rate=0.0)
    # the first run holds the warehouse for a while after landing, so the second surely meets it
    first = subprocess.Popen([*KARTE, "ingest", "--inbox", str(inbox), "--warehouse", str(warehouse), "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "KARTE_TEST_PAUSE_AFTER": "landing", "KARTE_TEST_PAUSE_SECONDS": "8"})
    deadline = time.monotonic() + 60
    while not warehouse.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    second = karte("ingest", "--inbox", inbox, "--warehouse", warehouse, "--json")
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 1 and "in use" in second.stderr and "Traceback" not in second.stderr
    again = karte("ingest", "--inbox", inbox, "--warehouse", warehouse, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["records_in"] == 0
    assert json.loads(out)["records_in"] > 0


def _children_of(pid: int) -> list[int]:
    """Every process whose parent is `pid` (from /proc, Linux)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = next(line for line in status.read_text().splitlines() if line.startswith("PPid:"))
        except (OSError, StopIteration):
            continue
        if int(ppid.split()[1]) == pid:
            found.append(int(status.parent.name))
    return found


def _descendants_of(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        children = [c for parent in frontier for c in _children_of(parent)]
        found += children
        frontier = children
    return found


def _survivors_of_sigkill_during_pool(tmp_path: Path, command: list[str], env: dict, workers: int) -> list[int]:
    """Run `command` (an ingest of a generated inbox big enough for a pool) until it has `workers` descendant
    processes, kill -9 it, and return the descendants still alive 10 s later (zombies count as gone)."""
    import signal

    from pipelines.generate import generate

    inbox = tmp_path / "inbox"
    generate(inbox, facilities=10, patients=400, seed=5, fault_rate=0.0)
    proc = subprocess.Popen([*command, "ingest", "--inbox", str(inbox), "--warehouse", str(tmp_path / "w.duckdb")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes: list[int] = []
    deadline = time.monotonic() + 120
    while len(processes) < workers and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        processes = _descendants_of(proc.pid)
    assert len(processes) >= workers, "the ingest never started its pool"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in processes if Path(f"/proc/{p}/status").exists()
            and "State:\tZ" not in Path(f"/proc/{p}/status").read_text()]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to see the pool workers")
def test_sigkill_of_an_ingest_takes_its_structure_pool_workers_with_it(tmp_path):
    """Strict mode checks structure in a process pool: a kill -9 of the ingest must not leave the workers
    waiting on their queue for ever (each holds a few hundred MiB). The raw step reads in one process here."""
    read_alone = ("import sys, pipelines.ingest.raw as raw; raw.POOL_MIN_BYTES = 2**62; "
                  "from pipelines.cli import main; sys.exit(main(sys.argv[1:]))")
    env = os.environ | {"KARTE_STRUCTURE_VALIDATION": "strict"}
    assert _survivors_of_sigkill_during_pool(tmp_path, [sys.executable, "-c", read_alone], env, workers=1) == []


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to see the pool workers")
def test_sigkill_of_an_ingest_takes_its_raw_reading_workers_with_it(tmp_path):
    """The raw step reads large batches in a pool of forked workers: a kill -9 of the ingest must end every
    one of them."""
    force_pool = ("import sys, pipelines.ingest.raw as raw; raw.POOL_MIN_BYTES = 0; raw.GROUP_BYTES = 2**20; "
                  "from pipelines.cli import main; sys.exit(main(sys.argv[1:]))")
    assert _survivors_of_sigkill_during_pool(tmp_path, [sys.executable, "-c", force_pool], dict(os.environ),
                                             workers=2) == []
