"""The `karte` command line as a user meets it: JSON contract, exit codes, one-line errors."""

import json
import subprocess
import sys

import duckdb

from tests.conftest import load_example, write_bundles

KARTE = [sys.executable, "-m", "pipelines.cli"]
INGEST_KEYS = {"files_seen", "files_ingested", "files_skipped_duplicate", "records_in", "records_loaded",
               "records_quarantined", "records_duplicate", "records_tombstoned", "loaded_by_table"}


def karte(*args, env=None):
    return subprocess.run([*KARTE, *map(str, args)], capture_output=True, text=True, env=env, timeout=300, check=False)


def test_ingest_json_contract(examples, inbox, warehouse):
    write_bundles(inbox, {"obs.json": load_example("Bundle-Bundle-CLINS-Observations-Example-01.json")})
    (inbox / "fhir" / "broken.json").write_text('{"resourceType": "Bundle", "entry": [', encoding="utf-8")
    done = karte("ingest", "--inbox", inbox, "--warehouse", warehouse, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert INGEST_KEYS <= summary.keys()
    assert summary["records_in"] == (summary["records_loaded"] + summary["records_quarantined"]
                                     + summary["records_duplicate"] + summary["records_tombstoned"])
    assert summary["records_quarantined"] == 1 and summary["loaded_by_table"]["core.lab_result"] == 4


def test_missing_inbox_is_a_one_line_error(tmp_path):
    done = karte("ingest", "--inbox", tmp_path / "nope", "--warehouse", tmp_path / "w.duckdb")
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_foreign_file_as_warehouse_is_a_one_line_error(tmp_path, inbox):
    fake = tmp_path / "fake.duckdb"
    fake.write_bytes(b"this is not a database" * 100)
    done = karte("ingest", "--inbox", inbox, "--warehouse", fake)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert fake.read_bytes() == b"this is not a database" * 100  # untouched


def test_locked_warehouse_is_a_one_line_error(tmp_path, inbox):
    path = tmp_path / "w.duckdb"
    holder = duckdb.connect(str(path))  # another process would hold the same lock
    try:
        code = ("import sys; from pipelines.cli import main; "
                f"sys.exit(main(['ingest', '--inbox', {str(inbox)!r}, '--warehouse', {str(path)!r}]))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    finally:
        holder.close()
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "in use" in done.stderr or "lock" in done.stderr


def test_bad_arguments_exit_2():
    assert karte("ingest", "--no-such-flag").returncode == 2
    assert karte("report", "nonsense").returncode == 2


def test_query_prints_csv_and_refuses_writes(examples, inbox, warehouse):
    write_bundles(inbox, {"obs.json": load_example("Bundle-Bundle-CLINS-Observations-Example-01.json")})
    assert karte("ingest", "--inbox", inbox, "--warehouse", warehouse).returncode == 0
    done = karte("query", "SELECT clins_item, value_unit FROM shared.visible_lab_result('1318814790', now(), "
                 "purpose := 'ETREAT') ORDER BY identity_occurrence", "--warehouse", warehouse)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == ["clins_item,value_unit", "ALB,mg/L"]
    for sql in ("DELETE FROM core.lab_result", "CREATE TABLE x AS SELECT 1",
                f"COPY core.lab_result TO '{warehouse.parent / 'x.csv'}'", "SELECT * FROM read_csv('/etc/passwd')",
                "SELECT * FROM core.lab_result", "SELECT * FROM raw.resource",
                "SELECT * FROM query_table('core.lab_result')", "SELECT 1; SELECT 2"):
        refused = karte("query", sql, "--warehouse", warehouse)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, sql
    assert not (warehouse.parent / "x.csv").exists()
    refused = karte("query", "SELECT count(*) FROM core.lab_result", "--warehouse", warehouse)
    assert "shared.visible_" in refused.stderr


def test_report_quality_names_facility_and_rule(examples, inbox, warehouse, tmp_path):
    bundle = load_example("Bundle-Bundle-CLINS-Observations-Example-01.json")
    bundle["identifier"]["value"] = "1318814790^1999^bad"
    write_bundles(inbox, {"obs.json": bundle})
    assert karte("ingest", "--inbox", inbox, "--warehouse", warehouse).returncode == 0
    done = karte("report", "quality", "--warehouse", warehouse, "--out", tmp_path / "reports")
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "reports" / "quality.html").read_text(encoding="utf-8")
    assert "1318814790" in html and "R2152" in html and "データ品質レポート" in html
    csv_text = (tmp_path / "reports" / "quality_by_facility_rule.csv").read_text(encoding="utf-8")
    assert "1318814790" in csv_text and ",R2152," in csv_text
