"""Staging steps take their input in windows of raw ids (KARTE_WINDOW_IDS) so memory follows the window, not
the inbox; the window size must not change what the warehouse ends up holding."""

from pipelines.generate import generate
from pipelines.warehouse import windows
from tests.conftest import run_ingest
from tests.ingest.test_idempotent import fingerprints


def test_windows_cover_the_range_once_and_always_yield_the_watermark():
    assert list(windows(0, 10, 4)) == [(0, 4), (4, 8), (8, 10)]
    assert list(windows(7, 7, 4)) == [(7, 7)]  # nothing pending: the watermark is still written
    assert list(windows(9, 3, 4)) == [(9, 9)]  # never moves a watermark backwards


def test_tiny_windows_give_the_same_warehouse_as_one_window(tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    generate(inbox, facilities=8, patients=60, seed=11, fault_rate=0.05)
    one, con = run_ingest(inbox, tmp_path / "one.duckdb")
    con.close()
    monkeypatch.setenv("KARTE_WINDOW_IDS", "150")  # ~16 windows per step, bundles in windows of 15
    many, con = run_ingest(inbox, tmp_path / "many.duckdb")
    con.close()
    assert one["records_in"] > 150 * 10
    assert {k: v for k, v in many.items() if k not in ("batch_id", "warehouse")} == \
           {k: v for k, v in one.items() if k not in ("batch_id", "warehouse")}
    assert fingerprints(tmp_path / "many.duckdb") == fingerprints(tmp_path / "one.duckdb")
