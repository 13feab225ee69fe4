"""Core tables have no primary key (pipelines/warehouse/core.sql): their grain — one row per identity — is kept
by the upsert and checked by `duplicate_identities` (the `identity_is_unique` asset check)."""

import re
import zipfile

import pytest

from pipelines.generate import generate
from pipelines.ingest.upsert import CORE_TABLES, CoreTable, duplicate_identities, upsert
from pipelines.warehouse import connect, set_watermark
from tests.conftest import run_ingest

ONE_ROW_TABLES = [spec for spec in CORE_TABLES if spec.one_row_per_identity]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A generated inbox (with its faults) and its warehouse, ingested once."""
    root = tmp_path_factory.mktemp("identity")
    generate(root / "inbox", facilities=4, patients=16, seed=11, fault_rate=0.05)
    run_ingest(root / "inbox", root / "w.duckdb")[1].close()
    return root


def test_every_core_table_holds_one_row_per_identity(generated):
    con = connect(generated / "w.duckdb")
    try:
        assert {spec.table for spec in ONE_ROW_TABLES} == {spec.table for spec in CORE_TABLES} - {"consent_event"}
        for spec in ONE_ROW_TABLES:
            assert con.execute(f"SELECT count(*) FROM core.{spec.table}").fetchone()[0] > 0, spec.table
            assert duplicate_identities(con, spec) == 0, spec.table
        # the check sees a duplicate when there is one, and only among identities written after `since`
        checkup = next(spec for spec in ONE_ROW_TABLES if spec.table == "checkup_result")
        con.execute("BEGIN TRANSACTION")  # rolled back: the other test reads this warehouse
        con.execute("INSERT INTO core.checkup_result SELECT * FROM core.checkup_result LIMIT 1")
        assert duplicate_identities(con, checkup) == 1
        newest = con.execute("SELECT max(raw_id) FROM core.checkup_result").fetchone()[0]
        assert duplicate_identities(con, checkup, since=newest) == 0
        con.execute("ROLLBACK")
    finally:
        con.close()


def _repeat_first_item(xml: str) -> str:
    """The document with its first stand-alone item observation sent twice, one after the other."""
    entry = re.search(r'<entry><observation classCode="OBS" moodCode="EVN">.*?</observation></entry>', xml,
                      re.DOTALL)
    assert entry is not None
    return xml[:entry.end()] + entry.group(0) + xml[entry.end():]


def test_a_document_reporting_an_item_twice_is_quarantined_not_a_crash(generated, tmp_path):
    """Before, both rows reached the checkup upsert and its key failed the whole run; which value counts is not
    ours to choose, so the document is quarantined (K-CHECKUP-REPEAT) and the rest of the run loads."""
    inbox = tmp_path / "inbox"
    con = connect(generated / "w.duckdb", read_only=True)
    try:  # an archive whose documents were all loaded
        (path,) = con.execute("""
            SELECT m.path FROM ops.file_manifest m JOIN raw.resource r USING (file_id)
            LEFT JOIN ops.record_outcome o USING (raw_id)
            WHERE m.kind = 'checkups' GROUP BY m.path HAVING bool_and(o.outcome = 'loaded') ORDER BY m.path LIMIT 1
        """).fetchone()
    finally:
        con.close()
    archive = generated / "inbox" / path
    (inbox / path).parent.mkdir(parents=True)
    with zipfile.ZipFile(archive) as source:
        members = [(info, source.read(info)) for info in source.infolist()]
    documents = [info.filename for info, _ in members if info.filename.startswith("DATA/")]
    with zipfile.ZipFile(inbox / path, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in members:
            if info.filename == documents[0]:
                data = _repeat_first_item(data.decode("utf-8")).encode("utf-8")
            target.writestr(info, data)

    summary, con = run_ingest(inbox, tmp_path / "w.duckdb")
    try:
        outcomes = dict(con.execute("SELECT r.full_url, o.outcome FROM raw.resource r JOIN ops.record_outcome o "
                                    "USING (raw_id) WHERE r.resource_type = 'CheckupDocument'").fetchall())
        assert outcomes == {name: "quarantined" if name == documents[0] else "loaded" for name in documents}
        (message,) = con.execute("SELECT message FROM ops.quarantine WHERE rule_id = 'K-CHECKUP-REPEAT'").fetchone()
        assert re.fullmatch(r"特定健診項目 [0-9A-Z]{17} reported more than once in one document", message)
        checkup = next(spec for spec in ONE_ROW_TABLES if spec.table == "checkup_result")
        assert duplicate_identities(con, checkup) == 0
        assert summary["records_in"] == summary["records_loaded"] + summary["records_quarantined"] \
            + summary["records_duplicate"] + summary["records_tombstoned"]
    finally:
        con.close()


def test_rows_tying_on_identity_version_and_record_leave_the_last_staged(tmp_path):
    """The upsert's own guard, whatever a stage lets through: of staged rows that tie on identity, version and
    raw record, one reaches core (the last staged) — but every row of a multi-row identity's winning version."""
    con = connect(tmp_path / "w.duckdb")
    try:
        for table in ("one", "many"):
            con.execute(f"CREATE TABLE staging.{table} (raw_id BIGINT, file_id BIGINT, code VARCHAR, value VARCHAR)")
            con.execute(f"CREATE TABLE core.{table} (code VARCHAR NOT NULL, value VARCHAR, last_updated TIMESTAMPTZ, "
                        "is_tombstoned BOOLEAN, raw_id BIGINT)")
            con.execute(f"INSERT INTO staging.{table} VALUES (1, 1, 'a', 'first'), (1, 1, 'a', 'second'), "
                        "(2, 1, 'b', 'only')")
            set_watermark(con, f"staging.{table}", 2)
        upsert(con, CoreTable("one", ("code",)))
        upsert(con, CoreTable("many", ("code",), one_row_per_identity=False))
        assert con.execute("SELECT code, value FROM core.one ORDER BY ALL").fetchall() == [
            ("a", "second"), ("b", "only")]
        assert con.execute("SELECT code, value FROM core.many ORDER BY ALL").fetchall() == [
            ("a", "first"), ("a", "second"), ("b", "only")]
    finally:
        con.close()
