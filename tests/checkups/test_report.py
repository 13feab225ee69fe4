"""`karte report checkups`: on a generated sample, the report's counts and rates equal those computed here
independently from the truth files; small cells are suppressed; HTML / CSV / XLSX are written."""

import csv
from collections import defaultdict
from datetime import date
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from pipelines import cli
from pipelines.reports.checkups import (
    ALL,
    RATES,
    RESULT_COUNTS,
    SMALL_CELL,
    CheckupReportError,
    build_checkup_report,
    participation_counts,
    result_counts,
)
from tests.checkups.conftest import prefecture_codes, warehouse_from

AS_OF = date(2026, 3, 31)  # fiscal year 2025, complete


@pytest.fixture(scope="module")
def con(clean_sample, clean_rows):
    con = warehouse_from(clean_rows, clean_sample / "_truth" / "patients.csv")
    yield con
    con.close()


def band(age: int) -> str:
    return f"{age // 5 * 5}-{age // 5 * 5 + 4}"


def fiscal_year_end_age(year: int, month: int, fiscal_year: int) -> int:
    return fiscal_year + 1 - year - (1 if month > 3 else 0)


def groups(pref: str, sex: str, age_band: str) -> list[tuple[str, str, str]]:
    """Every cell a person counts in: detail, prefecture × sex, prefecture, sex × band, sex, national."""
    return [(pref, sex, age_band), (pref, sex, ALL), (pref, ALL, ALL), ("00", sex, age_band), ("00", sex, ALL),
            ("00", ALL, ALL)]


def expected_results(root: Path, fiscal_year: int, as_of: date) -> dict[tuple, dict]:
    """From _truth/checkups.csv alone: one 特定健診 per person and year, measures by the report's definitions."""
    people: dict[str, dict] = {}
    start, end = date(fiscal_year, 4, 1), min(date(fiscal_year + 1, 3, 31), as_of)
    with open(root / "_truth" / "checkups.csv", encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            day = date.fromisoformat(r["checkup_date"])
            if r["program"] != "010" or not start <= day <= end:
                continue
            birth = date.fromisoformat(r["birth_date"])
            p = people.setdefault(r["patient_key"], {
                "pref": r["prefecture_code"], "sex": r["sex"], "metabo": r["metabo"], "readings": defaultdict(dict),
                "age": fiscal_year_end_age(birth.year, birth.month, fiscal_year), "hba1c": None})
            code, value = r["item_code"], r["value_number"]
            if code == "3D046000001906202":
                p["hba1c"] = float(value)
            for part, codes in (("sbp", ("9A751000000000001", "9A752000000000001", "9A755000000000001")),
                                ("dbp", ("9A761000000000001", "9A762000000000001", "9A765000000000001"))):
                if code in codes:
                    p["readings"][part][codes.index(code)] = float(value)
    cells: dict[tuple, dict] = defaultdict(lambda: dict.fromkeys(RESULT_COUNTS, 0))
    for p in people.values():
        if not 40 <= p["age"] <= 74:
            continue
        pressure = {}
        for part, readings in p["readings"].items():
            both = [readings[i] for i in (0, 1) if i in readings]
            pressure[part] = sum(both) / len(both) if both else readings.get(2)
        measures = {
            "examinees": True, "metabo_judged": p["metabo"] in ("1", "2", "3"), "metabo_positive": p["metabo"] == "1",
            "metabo_reserve": p["metabo"] == "2", "hba1c_measured": p["hba1c"] is not None,
            "hba1c_high": p["hba1c"] is not None and p["hba1c"] >= 6.5, "bp_measured": bool(pressure),
            "bp_high": (pressure.get("sbp") or 0) >= 140 or (pressure.get("dbp") or 0) >= 90,
        }
        for cell in groups(p["pref"], p["sex"], band(p["age"])):
            for name, hit in measures.items():
                cells[cell][name] += int(hit)
    return dict(cells)


def expected_participation(root: Path, fiscal_year: int, results: dict) -> dict[tuple, dict]:
    codes = prefecture_codes()
    examined = set()
    with open(root / "_truth" / "checkups.csv", encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["program"] == "010" and r["fiscal_year"] == str(fiscal_year) and \
                    date.fromisoformat(r["checkup_date"]) <= AS_OF:
                examined.add(r["patient_key"])
    cells: dict[tuple, dict] = defaultdict(lambda: {"eligible": 0, "examinees": 0})
    with open(root / "_truth" / "patients.csv", encoding="utf-8", newline="") as fh:
        for r in csv.DictReader(fh):
            age = fiscal_year_end_age(int(r["birth_date"][:4]), int(r["birth_date"][5:7]), fiscal_year)
            if not 40 <= age <= 74:
                continue
            pref = next(c for n, c in codes.items() if r["address"].startswith(n))
            for cell in groups(pref, r["gender"], band(age)):
                cells[cell]["eligible"] += 1
                cells[cell]["examinees"] += r["patient_key"] in examined
    return dict(cells)


def as_cells(frame: pl.DataFrame, columns: list[str]) -> dict[tuple, dict]:
    return {(r["prefecture_code"], r["sex"], r["age_band"]): {c: r[c] for c in columns}
            for r in frame.iter_rows(named=True)}


def test_results_equal_the_truth(clean_sample, con):
    expected = expected_results(clean_sample, 2025, AS_OF)
    frame = result_counts(con, 2025, AS_OF)
    assert as_cells(frame, RESULT_COUNTS) == expected
    assert expected[("00", ALL, ALL)]["examinees"] > 100
    for r in frame.iter_rows(named=True):
        for rate, (num, den) in RATES.items():
            want = expected[(r["prefecture_code"], r["sex"], r["age_band"])]
            assert r[rate] == pytest.approx(want[num] / want[den] if want[den] else None, abs=1e-12)


def test_participation_equals_the_truth(clean_sample, con):
    expected = expected_participation(clean_sample, 2025, expected_results(clean_sample, 2025, AS_OF))
    frame = participation_counts(con, 2025, AS_OF)
    assert as_cells(frame, ["eligible", "examinees"]) == expected
    national = frame.filter(prefecture_code="00", sex=ALL, age_band=ALL).row(0, named=True)
    assert 0.3 < national["participation_rate"] < 0.7  # the generator's participation share is 0.5


def test_a_partial_year_counts_only_checkups_up_to_the_as_of_day(clean_sample, con):
    as_of = date(2025, 9, 30)
    assert as_cells(result_counts(con, 2025, as_of), RESULT_COUNTS) == expected_results(clean_sample, 2025, as_of)


def test_small_cells_are_suppressed(con):
    report = build_checkup_report(con, AS_OF)
    raw = result_counts(con, 2025, AS_OF)
    assert report.fiscal_year == 2025 and report.results.height == raw.height
    for shown, full in zip(report.results.iter_rows(named=True), raw.iter_rows(named=True)):
        for c in RESULT_COUNTS:
            assert shown[c] == (full[c] if full[c] >= SMALL_CELL else None)
        for rate, (num, den) in RATES.items():
            small = full[num] < SMALL_CELL or full[den] < SMALL_CELL
            assert shown[rate] == (None if small else full[rate])
        assert shown["suppressed"] == any(full[c] < SMALL_CELL for c in RESULT_COUNTS)
    shown = report.results["metabo_rate"]
    assert shown.null_count() > 0 and shown.drop_nulls().len() > 0  # some cells big enough, some not
    assert report.participation.select(pl.col("eligible", "examinees")).min_horizontal().drop_nulls().min() >= 10
    assert report.results["prefecture_name_ja"].null_count() == 0


def test_files_html_csv_xlsx(con, tmp_path):
    report = build_checkup_report(con, AS_OF)
    from pipelines.reports.checkups import write_checkup_report

    paths = write_checkup_report(report, tmp_path)
    by_suffix = {p.suffix: p for p in paths}
    page = by_suffix[".html"].read_text(encoding="utf-8")
    assert "<svg" in page and "メタボ該当率" in page and "Metabolic syndrome" in page and "&lt;10" in page
    assert "<script" not in page and "<link" not in page and 'src="http' not in page
    csvs = [p for p in paths if p.suffix == ".csv"]
    assert pl.read_csv(csvs[0]).columns == report.results.columns
    book = openpyxl.load_workbook(by_suffix[".xlsx"], read_only=True)
    assert book.sheetnames == ["健診結果", "受診状況", "定義と入力"]
    header = next(book["健診結果"].iter_rows(max_row=1, values_only=True))
    assert "受診者数" in header and "メタボ該当率" in header
    values = [v for row in book["健診結果"].iter_rows(min_row=2, values_only=True) for v in row]
    assert "<10" in values
    assert not any(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < SMALL_CELL for v in values)


def test_cli(con, tmp_path, capsys):
    warehouse = tmp_path / "warehouse.duckdb"
    con.execute(f"ATTACH '{warehouse}' AS w")
    con.execute("CREATE SCHEMA w.core")
    con.execute("CREATE TABLE w.core.checkup_result AS SELECT * FROM core.checkup_result")
    con.execute("CREATE TABLE w.core.patient AS SELECT * FROM core.patient")
    con.execute("DETACH w")
    out = tmp_path / "reports"
    assert cli.main(["report", "checkups", "--warehouse", str(warehouse), "--out", str(out),
                     "--as-of", "2026-03-31"]) == 0
    assert {p.name for p in out.iterdir()} == {"checkups_2025.html", "checkups_2025.xlsx",
                                                "checkups_2025_results.csv", "checkups_2025_participation.csv"}
    empty = tmp_path / "empty.duckdb"
    import duckdb

    duckdb.connect(str(empty)).close()
    capsys.readouterr()
    assert cli.main(["report", "checkups", "--warehouse", str(empty), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkup_result" in err
    with pytest.raises(SystemExit) as bad_date:
        cli.main(["report", "checkups", "--warehouse", str(warehouse), "--as-of", "2026-13-01"])
    assert bad_date.value.code == 2


def test_no_checkup_table_is_a_clear_error():
    import duckdb

    with pytest.raises(CheckupReportError, match="core.checkup_result"):
        build_checkup_report(duckdb.connect(), AS_OF)
