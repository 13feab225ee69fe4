"""`karte report audit`: analysts get suppressed aggregates only (cells under 10 patients shown as "<10" and left out
of every total), the security officer gets the case list; HTML is self-contained with its as-of date and code
version; CSV and XLSX agree; the CLI validates its dates."""

import csv
import re
import shutil

import openpyxl
import polars as pl
import pytest

from pipelines import cli
from pipelines.reports.audit import SMALL_CELL, SUPPRESSED, margin, summary_cube


@pytest.fixture(scope="module")
def warehouse(audit_sample, tmp_path_factory):
    """A copy the CLI can open read-only (the sample's own file is open for writing in this process)."""
    audit_sample.con.execute("CHECKPOINT")
    path = tmp_path_factory.mktemp("audit_cli") / "warehouse.duckdb"
    shutil.copy(audit_sample.warehouse, path)
    return str(path)


@pytest.fixture(scope="module")
def report(audit_sample, warehouse, tmp_path_factory):
    out = tmp_path_factory.mktemp("audit_report")
    assert cli.main(["report", "audit", "--warehouse", warehouse, "--out", str(out), "--as-of", str(audit_sample.end)]) == 0
    return out


def _rows(path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_files_for_both_audiences(report):
    assert {p.name for p in report.iterdir()} == {
        "audit.html", "audit_summary.csv", "audit_summary.xlsx", "audit_cases.html", "audit_cases.csv",
        "audit_cases.xlsx"}


def test_analyst_outputs_hide_small_cells_and_identities(report, audit_sample):
    rows = _rows(report / "audit_summary.csv")
    assert rows and all(r["suppressed"] in ("true", "false") for r in rows)
    for r in rows:
        if r["suppressed"] == "true":
            assert r["findings"] == r["accesses"] == r["patients"] == SUPPRESSED
        else:
            assert int(r["patients"]) >= SMALL_CELL
    page = (report / "audit.html").read_text(encoding="utf-8")
    keys = {k for (k,) in audit_sample.con.execute("SELECT patient_key FROM core.access_event").fetchall()}
    assert not any(k in page for k in keys)
    summary = (report / "audit_summary.csv").read_text(encoding="utf-8")
    assert not any(k in summary for k in keys)


def test_officer_case_list_has_every_finding_with_evidence(report, audit_sample):
    cases = _rows(report / "audit_cases.csv")
    expected = sum(len(t["findings"]) for t in audit_sample.manifest["audit_truth"])
    assert len(cases) == expected
    assert all(re.fullmatch(r"[0-9a-f]{64}", c["patient_key"]) and c["explanation"] and c["evidence"] for c in cases)
    weights = [int(c["weight"]) for c in cases]
    assert weights == sorted(weights, reverse=True)
    book = openpyxl.load_workbook(report / "audit_cases.xlsx", read_only=True)
    assert book.sheetnames == ["cases", "about"] and book["cases"].max_row == len(cases) + 1
    assert openpyxl.load_workbook(report / "audit_summary.xlsx", read_only=True).sheetnames == ["summary", "about"]


def test_html_is_self_contained_bilingual_and_dated(report, audit_sample):
    for name in ("audit.html", "audit_cases.html"):
        page = (report / name).read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", page), name  # no network requests
        assert "<svg" in page or name == "audit_cases.html"
        assert "監査" in page and "Audit" in page and "同意なし閲覧" in page and "access without covering consent" in page
        footer = page[page.index("<footer>"):]
        assert f"As of {audit_sample.end}" in footer and "Code version" in footer and "git " in footer
        assert "hash chain intact" in page


def test_totals_are_sums_of_shown_cells_only(audit_sample):
    con = audit_sample.con
    con.execute("""CREATE OR REPLACE TEMP TABLE audit_finding AS
                   SELECT 'a' || i AS access_id, CASE WHEN i < 12 THEN 'A-NO-CARE' ELSE 'A-ROLE' END AS rule_id,
                          lpad(i::VARCHAR, 64, '0') AS patient_key, NULL::VARCHAR AS viewer, DATE '2026-01-05' AS day_jst
                   FROM range(15) r(i)""")  # 12 patients under A-NO-CARE (shown), 3 under A-ROLE (suppressed)
    cube = summary_cube(con)
    assert cube.filter(pl.col("rule_id") == "A-ROLE")["suppressed"].to_list() == [True]
    assert cube.filter(pl.col("rule_id") == "A-ROLE")["findings"].to_list() == [None]
    month = margin(cube, ["month"]).row(0, named=True)
    assert (month["findings_shown"], month["cells_suppressed"]) == (12, 1)


def test_cli_rejects_a_window_past_the_as_of_date(warehouse, tmp_path, capsys):
    code = cli.main(["report", "audit", "--warehouse", warehouse, "--out", str(tmp_path),
                     "--as-of", "2026-01-31", "--to", "2026-02-01"])
    assert code == 2 and "after --as-of" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        cli.main(["report", "audit", "--as-of", "2026-02-30"])
    assert bad.value.code == 2


def test_cli_window_limits_the_accesses(audit_sample, warehouse, tmp_path):
    code = cli.main(["report", "audit", "--warehouse", warehouse, "--out", str(tmp_path),
                     "--as-of", str(audit_sample.end), "--from", "2026-01-01", "--to", "2026-03-31"])
    assert code == 0
    days = {c["recorded_jst"][:10] for c in _rows(tmp_path / "audit_cases.csv")}
    assert days and min(days) >= "2026-01-01" and max(days) <= "2026-03-31"
