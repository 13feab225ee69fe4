"""Issue 8 groundwork: production refuses the public key, files are owner-only, symlinks are not followed,
and `karte query` refuses every way out of read-only."""

import os
import stat
import subprocess
import sys

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
    for path in [warehouse, warehouse.parent, reports, *reports.iterdir()]:
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
