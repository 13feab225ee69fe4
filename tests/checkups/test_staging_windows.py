"""Checkup staging over many small windows: a window holding no checkup bundle and no CDA document only moves
the watermark, and the warehouse ends exactly as when every window takes the full path."""

from pipelines.generate import generate
from pipelines.ingest import checkups
from pipelines.warehouse import connect
from tests.conftest import run_ingest
from tests.ingest.test_idempotent import fingerprints


def _ledgers(path) -> dict:
    con = connect(path, read_only=True)
    try:
        return {
            "watermarks": con.execute("SELECT consumer, last_id FROM ops.watermark ORDER BY ALL").fetchall(),
            "quarantine": con.execute("SELECT raw_id, bundle_key, file_id, scope, rule_id, message "
                                      "FROM ops.quarantine ORDER BY ALL").fetchall(),
            "checkup_rows": con.execute("SELECT count(*) FROM staging.checkup_result").fetchone()[0],
        }
    finally:
        con.close()


def test_windows_without_checkups_only_move_the_watermark(tmp_path, monkeypatch):
    generate(tmp_path / "inbox", facilities=6, patients=24, seed=5, fault_rate=0.1)
    monkeypatch.setenv("KARTE_WINDOW_IDS", "250")
    outcomes: list[bool] = []
    shortcut = checkups._nothing_to_stage

    def recording(con, lo, hi):
        outcomes.append(shortcut(con, lo, hi))
        return outcomes[-1]

    monkeypatch.setattr(checkups, "_nothing_to_stage", recording)
    run_ingest(tmp_path / "inbox", tmp_path / "fast.duckdb")[1].close()
    monkeypatch.setattr(checkups, "_nothing_to_stage", lambda *args: False)
    run_ingest(tmp_path / "inbox", tmp_path / "full.duckdb")[1].close()

    assert any(outcomes) and not all(outcomes)  # some windows skipped, some staged
    fast, full = _ledgers(tmp_path / "fast.duckdb"), _ledgers(tmp_path / "full.duckdb")
    assert fast["checkup_rows"] > 0
    assert {r[4] for r in fast["quarantine"]} >= {"K-XML", "K-XML-UNSAFE", "K-CHECKUP"}  # CDA failures staged
    assert fast == full
    assert fingerprints(tmp_path / "fast.duckdb") == fingerprints(tmp_path / "full.duckdb")


def test_cda_documents_are_staged_a_bounded_number_per_window(tmp_path, monkeypatch):
    """Ids alone do not bound a window's memory when its rows are 15–60 kB CDA documents: the checkup stage
    also cuts windows every HEAVY_ROWS_PER_WINDOW of them, and the warehouse is the one a single window gives."""
    from pipelines.ingest import raw_windows

    generate(tmp_path / "inbox", facilities=6, patients=24, seed=5, fault_rate=0.1)
    run_ingest(tmp_path / "inbox", tmp_path / "one.duckdb")[1].close()
    windows: list[tuple[int, int]] = []
    real = checkups.raw_windows

    def recording(*args, **kwargs):
        for window in real(*args, **kwargs):
            windows.append(window)
            yield window

    monkeypatch.setattr(raw_windows, "HEAVY_ROWS_PER_WINDOW", 2)
    monkeypatch.setattr(checkups, "raw_windows", recording)
    run_ingest(tmp_path / "inbox", tmp_path / "cut.duckdb")[1].close()

    con = connect(tmp_path / "cut.duckdb", read_only=True)
    documents = [raw_id for (raw_id,) in con.execute(
        f"SELECT raw_id FROM raw.resource WHERE resource_type = '{checkups.CHECKUP_DOCUMENT}'").fetchall()]
    con.close()
    per_window = [sum(lo < raw_id <= hi for raw_id in documents) for lo, hi in windows]
    assert len(documents) >= 4 and len(windows) >= 3 and max(per_window) == 2 and sum(per_window) == len(documents)
    assert [hi for _, hi in windows[:-1]] == [lo for lo, _ in windows[1:]]  # contiguous, nothing skipped
    assert _ledgers(tmp_path / "cut.duckdb") == _ledgers(tmp_path / "one.duckdb")
    assert fingerprints(tmp_path / "cut.duckdb") == fingerprints(tmp_path / "one.duckdb")
