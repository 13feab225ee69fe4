"""The HTML report in a real browser: headless Chromium with the network cut off renders it with no console
error, no exception and no request besides the page itself; the screenshot is kept for people to look at
(data/reports/test-artifacts/, git-ignored). Skips, saying why, where Chromium is not installed."""

import os
import tempfile
from datetime import date
from pathlib import Path

import pytest

from pipelines.config import DATA_DIR
from pipelines.reports.adoption import build_adoption_report, write_adoption_report
from pipelines.warehouse import connect
from tests.reports.chromium import Chromium, find_chromium

ARTIFACTS = DATA_DIR / "reports" / "test-artifacts"
CHECKS = """({
  svgs: document.querySelectorAll('svg').length,
  tiles: document.querySelectorAll('[data-pref]').length,
  tables: document.querySelectorAll('table').length,
  title: document.title,
  width: document.documentElement.scrollWidth,
  footer: (document.querySelector('footer') || {}).innerText || ''
})"""


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        message = "Chromium is not installed: `apt-get install -y chromium` (CI installs it in .ci/run)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI must run the browser test, not skip it
        pytest.skip(message)
    return binary


def test_report_renders_offline_without_errors(chromium, adoption_sample, tmp_path):
    con = connect(adoption_sample[1], read_only=True)
    try:
        report = build_adoption_report(con, as_of=date(2026, 10, 31))
    finally:
        con.close()
    [page] = write_adoption_report(report, tmp_path, ("html",))
    with tempfile.TemporaryDirectory(prefix="karte-chromium-") as profile:
        browser = Chromium(chromium, Path(profile))
        try:
            load = browser.load(page.resolve().as_uri(), ARTIFACTS / "adoption.png", CHECKS)
        finally:
            browser.close()
    assert load.loaded
    assert load.console_errors == [] and load.exceptions == []
    assert load.failed_requests == []
    assert load.requests == [page.resolve().as_uri()]
    assert load.checks["tiles"] == 47 and load.checks["svgs"] >= 6 and load.checks["tables"] >= 5
    assert "2026-10-31" in load.checks["title"] and "code_version" in load.checks["footer"]
    assert load.checks["width"] <= 1200  # nothing overflows the page sideways
    assert (ARTIFACTS / "adoption.png").stat().st_size > 10_000


def test_the_check_itself_sees_requests_and_errors(chromium, tmp_path):
    """The same harness on a page that misbehaves: it must report what the report page must not do."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><img src="https://example.invalid/x.png">'
                    '<script>console.error("boom"); undefinedFunction();</script></body></html>', encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="karte-chromium-") as profile:
        browser = Chromium(chromium, Path(profile))
        try:
            load = browser.load(page.as_uri(), tmp_path / "bad.png", "({})")
        finally:
            browser.close()
    assert "https://example.invalid/x.png" in load.requests and load.failed_requests
    assert any("boom" in e for e in load.console_errors) and load.exceptions


def test_empty_warehouse_report_renders_too(chromium, tmp_path):
    """Before any registry or submission has arrived the report still renders (and says there is no data)."""
    con = connect(tmp_path / "empty.duckdb")
    try:
        report = build_adoption_report(con)
    finally:
        con.close()
    [page] = write_adoption_report(report, tmp_path / "out", ("html",))
    with tempfile.TemporaryDirectory(prefix="karte-chromium-") as profile:
        browser = Chromium(chromium, Path(profile))
        try:
            load = browser.load(page.resolve().as_uri(), tmp_path / "empty.png", CHECKS)
        finally:
            browser.close()
    assert load.loaded and load.console_errors == [] and load.exceptions == [] and load.failed_requests == []
    assert load.checks["tiles"] == 47
