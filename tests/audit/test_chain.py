"""The access log's hash chain: intact after ingest and across runs; editing, deleting or inserting a row by hand
breaks it and the check names the first bad row (chain_seq + access_id); the Dagster check reports the same."""

import shutil

import dagster as dg
import pytest

from assets.core.access_chain import access_event_hash_chain
from pipelines.audit.chain import GENESIS, canonical_sql, chain_head, verify_chain
from pipelines.resources import KarteWarehouse
from pipelines.warehouse import connect
from tests.conftest import run_ingest


@pytest.fixture
def tampered(audit_sample, tmp_path):
    """A private copy of the ingested sample warehouse to tamper with."""
    audit_sample.con.execute("CHECKPOINT")
    path = tmp_path / "copy.duckdb"
    shutil.copy(audit_sample.warehouse, path)
    con = connect(path)
    yield path, con
    con.close()


def _row(con, seq: int) -> tuple[str, int]:
    return con.execute("SELECT access_id, raw_id FROM core.access_event WHERE chain_seq = ?", [seq]).fetchone()


def test_ingested_log_is_chained_in_insertion_order(audit_sample):
    con = audit_sample.con
    rows, chained, first, last = con.execute(
        "SELECT count(*), count(chain_seq), min(chain_seq), max(chain_seq) FROM core.access_event").fetchone()
    assert rows == chained == last == audit_sample.manifest["counts"]["audit_events"] and first == 1
    ordered = [r for (r,) in con.execute("SELECT raw_id FROM core.access_event ORDER BY chain_seq").fetchall()]
    assert ordered == sorted(ordered)
    verdict = verify_chain(con)
    assert verdict.intact and (verdict.head_seq, verdict.head_hash) == chain_head(con) and verdict.head_hash != GENESIS


def test_canonical_text_is_stable(audit_sample):
    """The hashes depend on this exact text: a DuckDB upgrade that changes it must fail here, not in production."""
    text = audit_sample.con.execute(f"""
        SELECT {canonical_sql('a')} FROM (SELECT 'x' AS access_id, 'k' AS patient_key, '1311111111' AS viewer,
               'D001' AS staff_id, 'doctor' AS staff_role, TIMESTAMPTZ '2025-01-02 03:04:05+09' AS recorded,
               'TREAT' AS purpose, 'R' AS action, '0' AS outcome, ['condition'] AS kinds,
               ['1311111111|C1']::VARCHAR[] AS resource_refs, 7::BIGINT AS raw_id) a""").fetchone()[0]
    assert text == ('["x","k","1311111111","D001","doctor",1735754645000000,"TREAT","R","0",["condition"],'
                    '["1311111111|C1"],7]')


def test_editing_a_row_names_it(tampered):
    _, con = tampered
    access_id, raw_id = _row(con, 5)
    con.execute("UPDATE core.access_event SET purpose = 'ETREAT' WHERE raw_id = ?", [raw_id])
    verdict = verify_chain(con)
    assert not verdict.intact
    assert (verdict.first_bad_seq, verdict.first_bad_access_id) == (5, access_id)
    assert "changed" in verdict.message() and access_id in verdict.message()


def test_recomputing_the_edited_rows_hash_moves_the_break_to_the_next_row(tampered):
    _, con = tampered
    _, raw_id = _row(con, 5)
    next_id, _ = _row(con, 6)
    con.execute("UPDATE core.access_event SET purpose = 'ETREAT' WHERE raw_id = ?", [raw_id])
    con.execute(f"""UPDATE core.access_event a SET row_hash = sha256(
                        (SELECT row_hash FROM core.access_event WHERE chain_seq = 4) || sha256({canonical_sql('a')}))
                    WHERE raw_id = {raw_id}""")
    verdict = verify_chain(con)
    assert (verdict.first_bad_seq, verdict.first_bad_access_id) == (6, next_id)


def test_deleting_a_row_names_the_row_after_the_gap(tampered):
    _, con = tampered
    next_id, _ = _row(con, 8)
    con.execute("DELETE FROM core.access_event WHERE chain_seq = 7")
    verdict = verify_chain(con)
    assert (verdict.first_bad_seq, verdict.first_bad_access_id) == (8, next_id)
    assert "7…7 are missing" in verdict.problem


def test_deleting_the_last_row_is_caught_by_the_head(tampered):
    _, con = tampered
    last = con.execute("SELECT max(chain_seq) FROM core.access_event").fetchone()[0]
    con.execute("DELETE FROM core.access_event WHERE chain_seq = ?", [last])
    verdict = verify_chain(con)
    assert not verdict.intact and verdict.first_bad_seq == last and "deleted" in verdict.problem


def test_emptying_the_log_and_its_head_is_caught_by_the_ingest_receipts(tampered):
    _, con = tampered
    con.execute("DELETE FROM core.access_event")
    con.execute("DELETE FROM ops.access_chain_head")
    verdict = verify_chain(con)
    assert not verdict.intact and "recorded as loaded" in verdict.problem


def test_inserting_a_row_by_hand_names_it(tampered):
    _, con = tampered
    con.execute("""INSERT INTO core.access_event (access_id, patient_key, viewer, recorded, raw_id)
                   SELECT 'forged', patient_key, viewer, recorded, 10000000 FROM core.access_event LIMIT 1""")
    verdict = verify_chain(con)
    assert not verdict.intact and verdict.first_bad_access_id == "forged" and verdict.first_bad_seq is None


def test_dagster_check_fails_on_tampering_and_names_the_row(tampered):
    path, con = tampered
    _, raw_id = _row(con, 3)
    karte = KarteWarehouse(warehouse=str(path))
    con.close()
    assert _evaluate(karte).passed
    with connect(path) as con2:
        con2.execute("DELETE FROM core.access_event WHERE raw_id = ?", [raw_id])
    result = _evaluate(karte)
    assert not result.passed and result.metadata["first_bad_chain_seq"].value == 4
    assert "chain_seq 4" in result.description


def _evaluate(karte: KarteWarehouse) -> dg.AssetCheckResult:
    return access_event_hash_chain(karte=karte)


def test_rows_and_their_chain_commit_together(audit_sample, tmp_path, monkeypatch):
    """A failure while chaining rolls the insert back too (no unchained rows); the next run loads and chains them."""
    from pipelines.audit import chain

    inbox = tmp_path / "inbox"
    shutil.copytree(audit_sample.inbox / "access", inbox / "access")  # the access log alone is enough here

    def broken(previous, hashes):
        raise RuntimeError("disk full while chaining")

    monkeypatch.setattr(chain, "fold", broken)
    with pytest.raises(RuntimeError, match="chaining"):
        run_ingest(inbox, tmp_path / "w.duckdb")
    monkeypatch.undo()
    with connect(tmp_path / "w.duckdb") as con:
        assert con.execute("SELECT count(*) FROM core.access_event").fetchone() == (0,)
    _, con = run_ingest(inbox, tmp_path / "w.duckdb")
    try:
        verdict = verify_chain(con)
        assert verdict.intact and verdict.rows == audit_sample.manifest["counts"]["audit_events"]
    finally:
        con.close()
