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
