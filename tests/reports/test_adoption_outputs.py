"""The adoption report's files: one self-contained HTML page, an XLSX workbook with a Japanese-headed sheet per
table, CSV and Parquet per table — and the same through `karte report adoption` and the Dagster assets."""

import json
import re
import subprocess
import sys
import zipfile
from datetime import UTC, date, datetime
from xml.etree import ElementTree

import dagster as dg
import duckdb
import polars as pl
import pytest

from pipelines.reports.adoption import TABLES, build_adoption_report, write_adoption_report
from pipelines.reports.adoption.labels import COLUMNS_JA
from pipelines.reports.xlsx import column_letter
from pipelines.warehouse import connect

AS_OF = date(2026, 10, 31)
SHEET_NS = {"s": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


@pytest.fixture(scope="module")
def written(adoption_sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("adoption_out")
    con = connect(adoption_sample[1], read_only=True)
    try:
        report = build_adoption_report(con, as_of=AS_OF, warehouse=str(adoption_sample[1]))
    finally:
        con.close()
    return report, write_adoption_report(report, out), out


def test_every_table_in_every_format(written):
    report, paths, out = written
    names = {p.name for p in paths}
    assert {"adoption.html", "adoption.xlsx"} <= names
    for table, frame in report.tables.items():
        assert f"{table}.csv" in names and f"{table}.parquet" in names
        assert pl.read_parquet(out / f"{table}.parquet").equals(frame)
        assert (out / f"{table}.csv").read_bytes().startswith(b"\xef\xbb\xbf" + frame.columns[0].encode())


def test_every_column_has_a_japanese_header(written):
    report, _, _ = written
    missing = {t: [c for c in f.columns if c not in COLUMNS_JA] for t, f in report.tables.items()}
    assert not any(missing.values()), missing


def test_workbook_has_one_sheet_per_table_with_japanese_headers(written):
    report, _, out = written
    with zipfile.ZipFile(out / "adoption.xlsx") as zf:
        assert zf.testzip() is None
        workbook = ElementTree.fromstring(zf.read("xl/workbook.xml"))
        sheets = [s.get("name") for s in workbook.iterfind("s:sheets/s:sheet", SHEET_NS)]
        assert sheets == [TABLES[name][0] for name in report.tables]
        for i, (name, frame) in enumerate(report.tables.items(), start=1):
            sheet = ElementTree.fromstring(zf.read(f"xl/worksheets/sheet{i}.xml"))
            rows = sheet.findall("s:sheetData/s:row", SHEET_NS)
            assert len(rows) == frame.height + 1, name
            header = ["".join(c.itertext()) for c in rows[0]]
            assert header == [COLUMNS_JA[c] for c in frame.columns]
            last = f"{column_letter(frame.width - 1)}1"
            assert rows[0][-1].get("r") == last


def test_html_is_self_contained_and_names_its_inputs(written):
    report, _, out = written
    page = (out / "adoption.html").read_text(encoding="utf-8")
    assert "<script" not in page and "<link" not in page and "url(" not in page and "@import" not in page
    # the only URLs in markup are XML namespaces; source citations are text, never fetched
    attributes = re.findall(r'(?:src|href|xlink:href|action)\s*=\s*"([^"]*)"', page)
    assert attributes == []
    assert page.count('data-pref="') == 47
    assert f"As of <b>{AS_OF}</b>" in page and report.inputs["code_version"] in page
    assert "data/reference/ehr_adoption_survey.csv" in page and str(report.inputs["warehouse"]) in page
    assert "タイルグリッド" in page and "tile-grid" in page


def test_cli_writes_the_report_and_refuses_bad_arguments(adoption_sample, tmp_path):
    karte = [sys.executable, "-m", "pipelines.cli", "report", "adoption", "--warehouse", str(adoption_sample[1]),
             "--out", str(tmp_path)]
    done = subprocess.run([*karte, "--as-of", "2026-06-30", "--format", "html,csv", "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["as_of"] == "2026-06-30" and (tmp_path / "adoption.html").exists()
    assert not (tmp_path / "adoption.xlsx").exists()
    for bad in (["--format", "pdf"], ["--target-level", "1.2"], ["--as-of", "June"]):
        done = subprocess.run([*karte, *bad], capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 2 and "Traceback" not in done.stderr, bad


def test_dagster_assets_write_the_reports_schema(warehouse_copy, tmp_path):
    from assets.reports.adoption import adoption_report
    from pipelines.resources import KarteWarehouse

    resource = KarteWarehouse(warehouse=str(warehouse_copy), reports=str(tmp_path))
    result = dg.materialize([adoption_report], resources={"karte": resource},
                            run_config={"ops": {"adoption_report": {"config": {"as_of": "2026-09-30",
                                                                                 "formats": "html"}}}})
    assert result.success
    assert {e.asset_key.path[-1] for e in result.get_asset_materialization_events()} == set(TABLES)
    assert all(e.passed for e in result.get_asset_check_evaluations())
    con = duckdb.connect(str(warehouse_copy), read_only=True)
    try:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'reports'").fetchall()}
        assert set(TABLES) <= tables
        assert con.execute("SELECT value FROM reports.adoption_inputs WHERE key = 'as_of'").fetchone()[0] == "2026-09-30"
    finally:
        con.close()
    assert (tmp_path / "adoption.html").exists()


def test_monthly_schedule_reads_the_month_just_ended():
    from pipelines.definitions import defs
    from pipelines.jobs import monthly_adoption_report

    assert defs.get_schedule_def("monthly_adoption_report").cron_schedule == "0 6 1 * *"
    tick = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)  # 2026-12-01 06:00 JST
    context = dg.build_schedule_context(scheduled_execution_time=tick)
    request = monthly_adoption_report(context)
    assert request.run_config["ops"]["adoption_report"]["config"]["as_of"] == "2026-11-30"
