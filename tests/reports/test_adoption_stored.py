"""The adoption report's stored facts (pipelines/reports/adoption/stored.py) give exactly the report of a computation
from scratch: after two ingests with a refresh between (the second one's files computed by the report), after
refreshing again in steps, with a file no run finished below the newest files, and when files below the read
position change. `karte refresh` brings them up to date."""

import json
import shutil

import pytest

from pipelines import cli
from pipelines.reports.adoption import build_adoption_report, stored
from pipelines.warehouse import connect
from tests.conftest import run_ingest
from tests.reports.conftest import drop_checkups
from tests.reports.test_adoption_generated import AS_OF

#: submissions dated from this month on arrive in the second ingest
LATER_FROM = "202607"


def _facts(con) -> dict[str, list[tuple]]:
    stored.build_facts(con)
    return {fact: con.execute(f"SELECT * FROM adoption_{fact} ORDER BY ALL").fetchall() for fact in stored.FACTS}


def _from_scratch(con) -> dict[str, list[tuple]]:
    """The facts with nothing stored: the stored tables set aside for the duration."""
    con.execute("BEGIN TRANSACTION")
    try:
        for table in stored.STATE_TABLES:
            con.execute(f"DROP TABLE IF EXISTS reports.{table}")
        assert stored.stored_state(con) == stored.EMPTY
        return _facts(con)
    finally:
        con.execute("ROLLBACK")


def _stored(con) -> dict[str, list[tuple]]:
    return {fact: con.execute(f"SELECT * FROM reports.adoption_{fact} ORDER BY ALL").fetchall()
            for fact in stored.FACTS}


@pytest.fixture(scope="module")
def two_ingests(adoption_sample, tmp_path_factory):
    """(connection, warehouse path): the adoption sample fed in two ingests — FHIR submissions dated from
    LATER_FROM on second — with the facts refreshed after the first only."""
    root = tmp_path_factory.mktemp("adoption_two_ingests")
    inbox, warehouse, later = root / "inbox", root / "w.duckdb", root / "later"
    shutil.copytree(adoption_sample[0], inbox)
    drop_checkups(inbox)
    later.mkdir()
    for path in (inbox / "fhir").iterdir():
        if path.name.split("_")[1][:6] >= LATER_FROM:
            shutil.move(path, later / path.name)
    _, con = run_ingest(inbox, warehouse)
    assert stored.refresh_facts(con)["files_added"] > 0
    con.close()
    for path in later.iterdir():
        shutil.move(path, inbox / "fhir" / path.name)
    second, con = run_ingest(inbox, warehouse)
    assert second["files_ingested"] > 0  # the second ingest brought files the stored facts do not cover
    yield con, warehouse
    con.close()


def test_the_report_computes_the_files_after_the_read_position(two_ingests):
    con, _ = two_ingests
    state = stored.stored_state(con)
    assert state != stored.EMPTY
    newer = con.execute(f"SELECT count(*) FROM ops.file_manifest WHERE file_id > {state.file_id}").fetchone()[0]
    assert newer > 0
    combined = _facts(con)
    assert combined == _from_scratch(con)
    assert all(combined.values())
    # and the whole report: every table but the inputs (which say what was stored) is the same
    report = build_adoption_report(con, as_of=AS_OF)
    con.execute("BEGIN TRANSACTION")
    try:
        for table in stored.STATE_TABLES:
            con.execute(f"DROP TABLE reports.{table}")
        scratch = build_adoption_report(con, as_of=AS_OF)
    finally:
        con.execute("ROLLBACK")
    for name, frame in report.tables.items():
        if name != "adoption_inputs":
            assert frame.equals(scratch.tables[name]), name
    assert report.inputs["stored_facts"].startswith(f"stored adoption facts through file_id {state.file_id}")
    assert f"{newer} later files computed" in report.inputs["stored_facts"]
    assert scratch.inputs["stored_facts"].startswith("no stored adoption facts in use")


def test_refreshing_in_steps_equals_a_refresh_from_nothing(two_ingests, tmp_path):
    con, warehouse = two_ingests
    con.execute("CHECKPOINT")
    copy = tmp_path / "copy.duckdb"
    shutil.copy(warehouse, copy)
    with connect(copy) as scratch:
        top = scratch.execute("SELECT max(file_id) FROM ops.file_manifest").fetchone()[0]
        before = stored.stored_state(scratch).file_id
        for through in (before + (top - before) // 3, before + 2 * (top - before) // 3, None):
            assert stored.refresh_facts(scratch, through_file_id=through)["files_added"] > 0
        assert stored.refresh_facts(scratch)["files_added"] == 0  # nothing new: nothing added
        assert stored.stored_state(scratch) == stored.FactsState(top, top)
        for fact, (keys, _) in stored.FACTS.items():  # one row per key however many refreshes added to it
            assert scratch.execute(f"SELECT count(*) = count(DISTINCT ({', '.join(keys)})) "
                                   f"FROM reports.adoption_{fact}").fetchone()[0], fact
        stepwise = _stored(scratch)
        for table in stored.STATE_TABLES:
            scratch.execute(f"DROP TABLE reports.{table}")
        stored.refresh_facts(scratch)
        assert _stored(scratch) == stepwise
        assert _facts(scratch) == _from_scratch(scratch)


def test_a_file_no_run_finished_holds_the_read_position(warehouse_copy):
    """A run killed mid-way leaves a file whose records have no outcome yet: the refresh stops before it, and the
    report computes it (and every file after it) until a run finishes it."""
    with connect(warehouse_copy) as con:
        file_id = con.execute("""SELECT min(file_id) FROM ops.file_manifest
                                 WHERE kind = 'fhir' AND file_id > (SELECT max(file_id) FROM ops.file_manifest) / 2
                              """).fetchone()[0]
        con.execute(f"DELETE FROM ops.record_outcome WHERE raw_id IN (SELECT raw_id FROM raw.resource "
                    f"WHERE file_id = {file_id})")
        con.execute(f"UPDATE ops.file_manifest SET reported_batch_id = NULL WHERE file_id = {file_id}")
        assert stored.refresh_facts(con)["file_id"] == file_id - 1
        assert _facts(con) == _from_scratch(con)


def test_files_changed_below_the_read_position_make_the_report_ignore_the_stored_facts(warehouse_copy):
    with connect(warehouse_copy) as con:
        stored.refresh_facts(con)
        assert stored.stored_state(con) != stored.EMPTY
        con.execute("DELETE FROM ops.file_manifest WHERE file_id = (SELECT min(file_id) FROM ops.file_manifest "
                    "WHERE kind = 'fhir')")
        assert stored.stored_state(con) == stored.EMPTY
        assert "no stored adoption facts" in stored.describe(con, stored.stored_state(con))


def test_karte_refresh_brings_both_reports_aggregates_up_to_date(warehouse_copy, capsys):
    assert cli.main(["refresh", "--warehouse", str(warehouse_copy), "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["adoption"]["files_added"] > 0 and done["audit"]["access_raw_id"] > 0
    assert cli.main(["refresh", "--warehouse", str(warehouse_copy)]) == 0
    assert "adoption facts: 0 files added" in capsys.readouterr().out
    with connect(warehouse_copy, read_only=True) as con:
        assert stored.stored_state(con).files == done["adoption"]["files"]
