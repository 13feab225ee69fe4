"""The SQL on FHIR v2 shared test suite, run against pipelines.views on DuckDB.

The suite is read where it lies (never copied into the repo): ``$KARTE_SOF_TESTS`` or
``<project root>/../shared/conformance/sql-on-fhir-v2/tests``. Each case compiles its view, runs the
SQL over the file's resources in an in-memory DuckDB table and compares rows ignoring order.

At the end of the session the outcome of every case is written in the suite's report format to
``$KARTE_SOF_REPORT`` (default ``data/reports/sql-on-fhir-test_report.json``).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.views import ViewError, compile_view

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SUITE = PROJECT_ROOT.parent / "shared" / "conformance" / "sql-on-fhir-v2" / "tests"
DEFAULT_REPORT = PROJECT_ROOT / "data" / "reports" / "sql-on-fhir-test_report.json"
SKIPLIST = Path(__file__).with_name("skiplist.json")


def _suite_dir() -> Path:
    return Path(os.environ.get("KARTE_SOF_TESTS") or DEFAULT_SUITE)


def _applies_to_r4(suite: dict) -> bool:
    """Files that list FHIR versions apply only when one of them is 4.0.x; no list means all."""
    versions = suite.get("fhirVersion")
    return not versions or any(str(v).startswith("4.0.") for v in versions)


def _load_cases() -> list[Any]:
    suite_dir = _suite_dir()
    if not suite_dir.is_dir():
        return []
    cases = []
    for path in sorted(suite_dir.glob("*.json")):
        suite = json.loads(path.read_text(encoding="utf-8"))
        for case in suite.get("tests", []):
            case_id = f"{path.name}::{case['title']}"
            cases.append(pytest.param(path.name, suite, case, id=case_id))
    return cases


CASES = _load_cases()
SKIPS: dict[str, str] = json.loads(SKIPLIST.read_text(encoding="utf-8"))
RESULTS: dict[str, list[dict]] = {}


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def _record(file_name: str, title: str, passed: bool, reason: str | None = None) -> None:
    result: dict[str, Any] = {"passed": passed}
    if reason:
        result["reason"] = reason
    RESULTS.setdefault(file_name, []).append({"name": title, "result": result})


def _report_path() -> Path:
    return Path(os.environ.get("KARTE_SOF_REPORT") or DEFAULT_REPORT)


def _write_report(results: dict[str, list[dict]]) -> None:
    """Write (or, under pytest-xdist, merge into) the report of this test run."""
    path = _report_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # shared by all workers of one xdist run
    marker = path.with_name(f".{path.name}.run")
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        report: dict[str, dict] = {}
        if run_id and marker.exists() and marker.read_text() == run_id and path.exists():
            report = json.loads(path.read_text(encoding="utf-8"))
        for file_name, tests in results.items():
            report.setdefault(file_name, {"tests": []})["tests"].extend(tests)
        path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        marker.write_text(run_id or "")


@pytest.fixture(scope="session", autouse=True)
def sof_report():
    yield
    if RESULTS:
        _write_report(RESULTS)


# --------------------------------------------------------------------------------------------------
# Running one case
# --------------------------------------------------------------------------------------------------


def _run(resources: list[dict], view: dict) -> tuple[list[str], list[tuple]]:
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE resources (resource JSON)")
        con.executemany(
            "INSERT INTO resources VALUES (?)", [[json.dumps(r, ensure_ascii=False)] for r in resources]
        )
        cursor = con.execute(compile_view(view, "resources"))
        columns = [d[0] for d in cursor.description]
        return columns, cursor.fetchall()
    finally:
        con.close()


def _normal(value: Any) -> Any:
    """A comparable form: floats rounded (DOUBLE arithmetic), lists kept in order."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return round(float(value), 9) if math.isfinite(value) else value
    if isinstance(value, (list, tuple)):
        return tuple(_normal(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _normal(v)) for k, v in value.items()))
    return value


def _row_key(row: dict) -> str:
    return json.dumps(sorted((k, _normal(v)) for k, v in row.items()), default=str)


def _check(case: dict, columns: list[str], rows: list[tuple]) -> str | None:
    """None when the result matches the case's expectation, else what differs."""
    got = [dict(zip(columns, row)) for row in rows]
    if "expectColumns" in case and columns != case["expectColumns"]:
        return f"columns {columns} != expected {case['expectColumns']}"
    if "expectCount" in case:
        return (
            None if len(got) == case["expectCount"] else f"{len(got)} rows != expected {case['expectCount']}"
        )
    expected = case["expect"]
    if expected and set(columns) != set(expected[0]):
        return f"columns {sorted(columns)} != expected {sorted(expected[0])}"
    if sorted(map(_row_key, got)) != sorted(map(_row_key, expected)):
        return f"rows differ:\n  got      {got}\n  expected {expected}"
    return None


@pytest.mark.skipif(
    not CASES, reason=f"SQL on FHIR v2 test suite not found: set KARTE_SOF_TESTS or provide {DEFAULT_SUITE}"
)
@pytest.mark.parametrize("file_name, suite, case", CASES or [pytest.param(None, None, None, id="no-suite")])
def test_sql_on_fhir(file_name: str, suite: dict, case: dict) -> None:
    title = case["title"]
    if not _applies_to_r4(suite):
        _record(file_name, title, False, f"not applicable to FHIR R4: {suite.get('fhirVersion')}")
        pytest.skip(f"{file_name} does not apply to FHIR 4.0.x")
    skip_reason = SKIPS.get(f"{file_name}::{title}")
    if skip_reason:
        _record(file_name, title, False, f"skipped: {skip_reason}")
        pytest.skip(skip_reason)

    if case.get("expectError"):
        try:
            _run(suite["resources"], case["view"])
        except (ViewError, duckdb.Error) as exc:
            _record(file_name, title, True)
            assert exc  # the error is the expected outcome
            return
        _record(file_name, title, False, "expected an error, the view ran")
        pytest.fail("expected ViewError or a DuckDB error, the view compiled and ran")

    try:
        columns, rows = _run(suite["resources"], case["view"])
    except (ViewError, duckdb.Error) as exc:
        _record(file_name, title, False, f"{type(exc).__name__}: {exc}")
        raise
    problem = _check(case, columns, rows)
    _record(file_name, title, problem is None, problem)
    assert problem is None, problem
