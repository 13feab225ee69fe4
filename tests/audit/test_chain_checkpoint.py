"""Incremental verification of the access log's hash chain: a checkpoint is recorded when a verification passes,
the next one re-hashes only the rows after it, deletion / copies / insertion are still found anywhere, an edit
before the checkpoint escapes the incremental check and is caught by the full one (`karte audit verify --full`),
and the audit report says which verification it shows."""

import json
import shutil

import pytest

from pipelines import cli
from pipelines.audit.chain import canonical_sql, latest_checkpoint, verify_and_checkpoint, verify_chain
from pipelines.reports.audit import write_audit_report
from pipelines.warehouse import connect

CHECKPOINT_SEQ = 20


@pytest.fixture
def checkpointed(audit_sample, tmp_path):
    """A private copy of the sample warehouse verified in full, its checkpoint then moved back to chain_seq 20 —
    as if the later rows had arrived after that verification."""
    audit_sample.con.execute("CHECKPOINT")
    path = tmp_path / "copy.duckdb"
    shutil.copy(audit_sample.warehouse, path)
    con = connect(path)
    assert verify_and_checkpoint(con, full=True).intact
    con.execute(f"""UPDATE ops.access_chain_checkpoint SET chain_seq = {CHECKPOINT_SEQ},
                    row_hash = (SELECT row_hash FROM core.access_event WHERE chain_seq = {CHECKPOINT_SEQ})""")
    yield path, con
    con.close()


def _raw_id(con, seq: int) -> int:
    return con.execute("SELECT raw_id FROM core.access_event WHERE chain_seq = ?", [seq]).fetchone()[0]


def test_a_passing_verification_records_a_checkpoint_and_the_next_rehashes_only_what_follows(checkpointed):
    _, con = checkpointed
    rows = con.execute("SELECT count(*) FROM core.access_event").fetchone()[0]
    verdict = verify_and_checkpoint(con)
    assert verdict.intact and not verdict.full and verdict.rows_hashed == rows - CHECKPOINT_SEQ
    assert "incremental verification" in verdict.message() and f"checkpoint chain_seq {CHECKPOINT_SEQ}" in verdict.message()
    assert latest_checkpoint(con).chain_seq == rows and latest_checkpoint(con).last_full_at is not None
    again = verify_chain(con)
    assert again.intact and again.rows_hashed == 0  # nothing new since
    full = verify_chain(con, full=True)
    assert full.intact and full.full and full.rows_hashed == rows and "full verification" in full.message()


def test_an_edit_after_the_checkpoint_is_caught_incrementally(checkpointed):
    _, con = checkpointed
    con.execute(f"UPDATE core.access_event SET purpose = 'ETREAT' WHERE raw_id = {_raw_id(con, CHECKPOINT_SEQ + 3)}")
    verdict = verify_chain(con)
    assert not verdict.intact and verdict.first_bad_seq == CHECKPOINT_SEQ + 3
    assert verify_and_checkpoint(con).intact is False
    assert latest_checkpoint(con).chain_seq == CHECKPOINT_SEQ  # a broken chain records no checkpoint


def test_an_edit_before_the_checkpoint_needs_the_full_verification(checkpointed):
    _, con = checkpointed
    con.execute(f"UPDATE core.access_event SET purpose = 'ETREAT' WHERE raw_id = {_raw_id(con, 5)}")
    incremental = verify_chain(con)
    assert incremental.intact and "incremental" in incremental.scope()  # what it does not re-hash, it says
    full = verify_chain(con, full=True)
    assert not full.intact and full.first_bad_seq == 5 and "changed" in full.problem


def test_deleting_or_copying_a_row_before_the_checkpoint_is_caught_incrementally(checkpointed):
    _, con = checkpointed
    con.execute("""INSERT INTO core.access_event SELECT * REPLACE ('copy' AS access_id, 10000000 AS raw_id)
                   FROM core.access_event WHERE chain_seq = 7""")
    copied = verify_chain(con)
    assert not copied.intact and copied.first_bad_seq == 7 and "appears again" in copied.problem
    con.execute("DELETE FROM core.access_event WHERE chain_seq = 7")
    deleted = verify_chain(con)
    assert not deleted.intact and deleted.first_bad_seq == 8 and "7…7 are missing" in deleted.problem


def test_rewriting_the_chain_through_the_checkpoint_is_caught_at_the_checkpoint(checkpointed):
    """An edit at chain_seq 5 with every later row_hash recomputed (and the head) passes the row-by-row links, but
    the checkpoint row no longer holds the hash that was verified."""
    _, con = checkpointed
    con.execute(f"UPDATE core.access_event SET purpose = 'ETREAT' WHERE raw_id = {_raw_id(con, 5)}")
    rows = con.execute(f"""SELECT chain_seq, sha256({canonical_sql('a')}) FROM core.access_event a
                           WHERE chain_seq >= 5 ORDER BY chain_seq""").fetchall()
    import hashlib

    previous = con.execute("SELECT row_hash FROM core.access_event WHERE chain_seq = 4").fetchone()[0]
    for seq, content in rows:
        previous = hashlib.sha256((previous + content).encode()).hexdigest()
        con.execute("UPDATE core.access_event SET row_hash = ? WHERE chain_seq = ?", [previous, seq])
    con.execute("UPDATE ops.access_chain_head SET row_hash = ?", [previous])
    verdict = verify_chain(con)
    assert not verdict.intact and verdict.first_bad_seq == CHECKPOINT_SEQ and "checkpoint" in verdict.problem


def test_karte_audit_verify_and_the_report_say_which_verification(checkpointed, tmp_path, capsys):
    path, con = checkpointed
    con.close()
    assert cli.main(["audit", "verify", "--warehouse", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["intact"] and not result["full"] and result["rows_hashed"] > 0
    assert cli.main(["audit", "refresh", "--warehouse", str(path)]) == 0
    assert "days recounted" in capsys.readouterr().out
    with connect(path) as con2:
        write_audit_report(con2, tmp_path / "out")
        page = (tmp_path / "out" / "audit.html").read_text(encoding="utf-8")
        assert "incremental verification" in page and "stored audit aggregates through access raw_id" in page
        con2.execute(f"UPDATE core.access_event SET purpose = 'ETREAT' WHERE raw_id = {_raw_id(con2, 5)}")
    assert cli.main(["audit", "verify", "--warehouse", str(path)]) == 0  # before the checkpoint: not re-hashed
    assert cli.main(["audit", "verify", "--full", "--warehouse", str(path)]) == 1
    assert "chain_seq 5" in capsys.readouterr().err


def test_deleting_the_rows_up_to_the_checkpoint_and_rewriting_the_head_is_caught(checkpointed):
    _, con = checkpointed
    con.execute(f"DELETE FROM core.access_event WHERE chain_seq > {CHECKPOINT_SEQ - 5}")
    con.execute(f"""UPDATE ops.access_chain_head SET chain_seq = {CHECKPOINT_SEQ - 5},
                    row_hash = (SELECT row_hash FROM core.access_event WHERE chain_seq = {CHECKPOINT_SEQ - 5})""")
    verdict = verify_chain(con)
    assert not verdict.intact and verdict.first_bad_seq == CHECKPOINT_SEQ - 4 and "missing" in verdict.problem
