"""The audit's stored aggregates (pipelines/audit/aggregates.py) give exactly the findings of a computation from
scratch: after two ingests with a refresh between (the second one's accesses computed on the fly by the report),
after refreshing again, for a window, and when a Consent sent late changes the coverage of an earlier access. The
histogram medians of the peer rules are DuckDB's median over the rows."""

import random
import shutil
from datetime import date, timedelta

import duckdb
import pytest

from pipelines.audit import aggregates, peer_rules
from pipelines.audit.findings import compute_findings
from pipelines.audit.window import AuditWindow
from pipelines.consent.intervals import derive_consent_intervals
from pipelines.warehouse import connect, set_watermark
from tests.conftest import run_ingest

_FINDING = ("SELECT access_id, rule_id, weight, explanation, CAST(evidence AS VARCHAR) FROM audit_finding "
            "ORDER BY ALL")


def _findings(con, window: AuditWindow) -> list[tuple]:
    compute_findings(con, window)
    return con.execute(_FINDING).fetchall()


def _from_scratch(con, window: AuditWindow) -> list[tuple]:
    """The findings with nothing stored: the aggregates set aside for the duration (the old, full computation)."""
    con.execute("BEGIN TRANSACTION")
    try:
        for table in aggregates.STATE_TABLES:
            con.execute(f"DROP TABLE IF EXISTS reports.{table}")
        assert aggregates.stored_state(con) == aggregates.EMPTY
        return _findings(con, window)
    finally:
        con.execute("ROLLBACK")


def _stored(con) -> dict[str, list[tuple]]:
    return {t: con.execute(f"SELECT * EXCLUDE (day_jst) FROM reports.{t} ORDER BY ALL").fetchall()
            if t == "audit_uncovered" else con.execute(f"SELECT * FROM reports.{t} ORDER BY ALL").fetchall()
            for t in ("audit_staff_day", "audit_facility_day", "audit_uncovered")}


@pytest.fixture(scope="module")
def two_ingests(audit_sample, tmp_path_factory):
    """A warehouse fed the sample inbox in two ingests (the last two months of access and consent files second),
    refreshed after the first only."""
    root = tmp_path_factory.mktemp("two_ingests")
    inbox, warehouse = root / "inbox", root / "w.duckdb"
    shutil.copytree(audit_sample.inbox, inbox)
    later = root / "later"
    for folder in ("access", "consent"):
        (later / folder).mkdir(parents=True)
        for path in sorted((inbox / folder).iterdir())[-2:]:
            shutil.move(path, later / folder / path.name)
    _, con = run_ingest(inbox, warehouse)
    done = aggregates.refresh_aggregates(con)
    assert done["days_recounted"] > 0 and done["coverage_recomputed"] > 0
    con.close()
    for folder in ("access", "consent"):
        for path in (later / folder).iterdir():
            shutil.move(path, inbox / folder / path.name)
    second, con = run_ingest(inbox, warehouse)
    assert second["loaded_by_table"].get("core.access_event", 0) > 0  # the second ingest brought accesses
    yield con, audit_sample.end + timedelta(days=1), warehouse
    con.close()


def test_the_report_computes_what_arrived_after_the_refresh(two_ingests):
    con, as_of, _ = two_ingests
    state = aggregates.stored_state(con)
    assert state != aggregates.EMPTY
    newer = con.execute(f"SELECT count(*) FROM core.access_event WHERE raw_id > {state.access_raw_id}").fetchone()[0]
    assert newer > 0  # the stored part is stale: the report must recompute the newer days itself
    window = AuditWindow(as_of)
    stale = _findings(con, window)
    assert stale == _from_scratch(con, window) and len(stale) > 0


def test_refreshing_again_equals_a_refresh_from_nothing(two_ingests, tmp_path):
    con, as_of, warehouse = two_ingests
    con.execute("CHECKPOINT")
    copy = tmp_path / "copy.duckdb"
    shutil.copy(warehouse, copy)
    done = aggregates.refresh_aggregates(con)
    assert done["days_recounted"] > 0
    assert aggregates.refresh_aggregates(con)["days_recounted"] == 0  # nothing new: nothing recounted
    with connect(copy) as scratch:
        for table in aggregates.STATE_TABLES:
            scratch.execute(f"DROP TABLE IF EXISTS reports.{table}")
        aggregates.refresh_aggregates(scratch)
        assert _stored(scratch) == _stored(con)
    for window in (AuditWindow(as_of), AuditWindow(as_of, date_from=as_of - timedelta(days=45),
                                                   date_to=as_of - timedelta(days=10))):
        assert _findings(con, window) == _from_scratch(con, window)


A, P = "1311111111", "a" * 64


@pytest.fixture
def hand_built(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    con.execute("INSERT INTO core.facility (institution_number, prefecture_code, score_table, facility_type, raw_id) "
                f"VALUES ('{A}', '13', '1', 'hospital', 1)")
    con.execute("""INSERT INTO core.access_event (access_id, patient_key, viewer, recorded, purpose, action, outcome,
                   kinds, raw_id, staff_id, staff_role, resource_refs)
                   VALUES ('x1', ?, ?, TIMESTAMPTZ '2025-03-01 10:00:00+09', 'TREAT', 'R', '0', ['condition'], 10,
                           'D001', 'doctor', [])""", [P, A])
    yield con
    con.close()


def test_a_late_consent_changes_the_stored_coverage_of_an_earlier_access(hand_built):
    con = hand_built
    window = AuditWindow(date(2025, 3, 31))
    aggregates.refresh_aggregates(con)
    assert ("x1", "A-NO-CONSENT") in {f[:2] for f in _findings(con, window)}
    # the patient's Consent, dated before the access, arrives after the refresh
    con.execute("""INSERT INTO core.consent_event VALUES ('c1', ?, TIMESTAMPTZ '2025-02-01 09:00:00+09', 'active',
                   'permit', 'condition', NULL, TIMESTAMPTZ '2025-02-01 09:00:00+09', NULL, 500)""", [P])
    set_watermark(con, "core.consent_event", 500)  # what the core step records after inserting it
    derive_consent_intervals(con)
    assert _findings(con, window) == _from_scratch(con, window)
    assert "A-NO-CONSENT" not in {f[1] for f in _findings(con, window)}
    assert aggregates.refresh_aggregates(con)["coverage_recomputed"] == 1
    assert con.execute("SELECT count(*) FROM reports.audit_uncovered").fetchone()[0] == 0
    assert _findings(con, window) == _from_scratch(con, window)


def test_rows_changed_below_the_read_position_make_the_report_ignore_the_stored_rows(hand_built):
    con = hand_built
    aggregates.refresh_aggregates(con)
    assert aggregates.stored_state(con) != aggregates.EMPTY
    con.execute("DELETE FROM core.access_event WHERE raw_id = 10")
    assert aggregates.stored_state(con) == aggregates.EMPTY


def test_histogram_medians_are_duckdbs_median():
    con = duckdb.connect()
    rng = random.Random(7)
    ints = [rng.choice([1, 1, 1, 2, 2, 3, 5, 40]) for _ in range(1001)]
    shares = [rng.random() / 3 for _ in range(200)] + [0.0] * 150
    for name, values, partition in (("ints", ints, None), ("ints_even", ints[:-1], None),
                                    ("shares", shares, None), ("parted", ints, "g")):
        con.execute(f"CREATE TABLE {name} (v DOUBLE, g INTEGER, floor_ DOUBLE)")
        con.executemany(f"INSERT INTO {name} VALUES (?, ?, 1.0)", [(v, i % 3) for i, v in enumerate(values)])
        peer_rules._robust(con, f"{name}_z", name, "v", partition)
        keys = "g, " if partition else ""
        expected = con.execute(f"""
            WITH c AS (SELECT {keys}median(v) AS m, count(*) AS n FROM {name} {"GROUP BY g" if partition else ""})
            SELECT {keys}m, n, (SELECT median(abs(t.v - c.m)) FROM {name} t
                                WHERE {"t.g = c.g" if partition else "true"}) FROM c ORDER BY ALL""").fetchall()
        got = con.execute(f"SELECT {keys}peer_median, peers, peer_mad FROM {name}_z_peer ORDER BY ALL").fetchall()
        assert got == expected, name
