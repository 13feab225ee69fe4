"""Property: shared.visible_* returns exactly the rows a brute-force reading of the consent rule allows.

Hypothesis draws consent histories (grants, scope changes, withdrawals, periods, grantees, ties, any arrival
order), clinical rows with flags and tombstones, viewers and instants; the reference below re-implements
docs/consent.md directly, event by event, independent of the SQL.
"""

from datetime import UTC, datetime, timedelta

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.consent.intervals import derive_consent_intervals
from pipelines.fhir.systems import INFORMATION_KINDS
from pipelines.warehouse import connect, set_watermark

BASE = datetime(2025, 1, 1, tzinfo=UTC)
PATIENTS = ["a" * 64, "b" * 64]
FACILITIES = ["1318814790", "2711234567", "4731234567"]
#: core table → kinds its category may take
TABLE_KINDS = {"condition": ["condition"], "allergy": ["allergy", "drug-contraindication"],
               "lab_result": ["lab-result", "infection"]}

# coarse times make same-instant events (ties) common
minutes = st.integers(min_value=0, max_value=20).map(lambda n: n * 30)
event = st.fixed_dictionaries({
    "patient": st.sampled_from(PATIENTS),
    "at": minutes,
    "status": st.sampled_from(["active", "active", "active", "inactive"]),
    "provision": st.sampled_from(["permit", "permit", "permit", "deny"]),
    "kinds": st.none() | st.lists(st.sampled_from(sorted(INFORMATION_KINDS)), min_size=1, max_size=4, unique=True),
    "grantees": st.none() | st.lists(st.sampled_from(FACILITIES), min_size=1, max_size=2, unique=True),
    "start": st.none() | st.integers(min_value=-60, max_value=120),  # relative to `at`
    "end": st.none() | st.integers(min_value=1, max_value=300),  # relative to the start
})
record = st.fixed_dictionaries({
    "patient": st.sampled_from(PATIENTS),
    "table": st.sampled_from(sorted(TABLE_KINDS)),
    "kind_index": st.integers(min_value=0, max_value=1),
    "undelivered": st.booleans(),
    "uninformed": st.booleans(),
    "tombstoned": st.integers(min_value=0, max_value=5).map(lambda n: n == 0),
})


def _instant(m: int) -> datetime:
    return BASE + timedelta(minutes=m)


def _event_rows(events: list[dict]) -> list[tuple]:
    rows = []
    for i, e in enumerate(events):
        start = _instant(e["at"] + e["start"]) if e["start"] is not None else None
        end = (start or _instant(e["at"])) + timedelta(minutes=e["end"]) if e["end"] is not None else None
        for kind in e["kinds"] or [None]:
            for grantee in e["grantees"] or [None]:
                rows.append((f"consent-{i:03d}", e["patient"], _instant(e["at"]), e["status"], e["provision"],
                             kind, grantee, start, end, 1000 + i))
    return rows


def reference_visible(events: list[dict], rec: dict, kind: str, viewer: str, at: datetime) -> bool:
    """docs/consent.md, read literally."""
    if rec["tombstoned"] or rec["undelivered"]:
        return False
    mine = [(e["at"], f"consent-{i:03d}", e) for i, e in enumerate(events) if e["patient"] == rec["patient"]]
    in_force = [x for x in mine if _instant(x[0]) <= at]
    if not in_force:
        return False
    _, _, e = max(in_force, key=lambda x: (x[0], x[1]))
    if e["status"] != "active" or e["provision"] != "permit":
        return False
    start = _instant(e["at"] + e["start"]) if e["start"] is not None else _instant(e["at"])
    end = start + timedelta(minutes=e["end"]) if e["end"] is not None else None
    if at < start or (end is not None and at >= end):
        return False
    if e["grantees"] is not None and viewer not in e["grantees"]:
        return False
    return e["kinds"] is None or kind in e["kinds"]


def _insert_events(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    if rows:
        con.executemany("INSERT INTO core.consent_event VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _load(con: duckdb.DuckDBPyConnection, events: list[dict], records: list[dict]) -> list[tuple]:
    _insert_events(con, _event_rows(events))
    set_watermark(con, "core.consent_event", 10_000)
    derive_consent_intervals(con)
    placed = []
    for n, rec in enumerate(records):
        kinds = TABLE_KINDS[rec["table"]]
        kind = kinds[rec["kind_index"] % len(kinds)]
        con.execute(
            f"""INSERT INTO core.{rec['table']} (institution_number, resource_identifier, identity_occurrence,
                    patient_key, category, flag_lts, flag_uninformed, flag_undelivered, is_tombstoned, raw_id, file_id)
                VALUES ('1318814790', ?, 1, ?, ?, false, ?, ?, ?, ?, 1)""",
            [f"r{n}", rec["patient"], kind, rec["uninformed"], rec["undelivered"], rec["tombstoned"], n])
        placed.append((rec, kind, n))
    return placed


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(event, max_size=6), records=st.lists(record, min_size=1, max_size=6),
       viewer=st.sampled_from(FACILITIES), at=st.integers(min_value=-10, max_value=800))
def test_shared_equals_brute_force(events, records, viewer, at):
    con = connect(":memory:")
    placed = _load(con, events, records)
    instant = _instant(at)
    for table in TABLE_KINDS:
        got = {row[0] for row in con.execute(
            f"SELECT raw_id FROM shared.visible_{table}(?, ?::TIMESTAMPTZ)", [viewer, instant]).fetchall()}
        expected = {n for rec, kind, n in placed
                    if rec["table"] == table and reference_visible(events, rec, kind, viewer, instant)}
        assert got == expected, (table, viewer, instant)


@settings(max_examples=40, deadline=None)
@given(events=st.lists(event, min_size=1, max_size=6), order=st.randoms(use_true_random=False))
def test_intervals_do_not_depend_on_arrival_order(events, order):
    """Late and out-of-order files: intervals are derived from event time, never from arrival."""
    def intervals(rows):
        con = connect(":memory:")
        _insert_events(con, rows)
        set_watermark(con, "core.consent_event", 10_000)
        derive_consent_intervals(con)
        return con.execute("SELECT * FROM core.consent_interval ORDER BY ALL").fetchall()

    rows = _event_rows(events)
    shuffled = [(*r[:-1], 5000 + i) for i, r in enumerate(order.sample(rows, len(rows)))]
    assert intervals(rows) == intervals(shuffled)


def test_emergency_purpose_needs_no_consent_but_never_shows_undelivered():
    con = connect(":memory:")
    placed = _load(con, [], [{"patient": PATIENTS[0], "table": "condition", "kind_index": 0, "undelivered": False,
                               "uninformed": True, "tombstoned": False},
                              {"patient": PATIENTS[0], "table": "condition", "kind_index": 0, "undelivered": True,
                               "uninformed": False, "tombstoned": False}])
    assert placed
    treat = con.execute("SELECT raw_id FROM shared.visible_condition(?, now())", [FACILITIES[0]]).fetchall()
    emergency = con.execute("SELECT raw_id FROM shared.visible_condition(?, now(), purpose := 'ETREAT')",
                            [FACILITIES[0]]).fetchall()
    assert treat == [] and emergency == [(0,)]
    # the patient sees neither the 未告知 nor the 未提供 condition
    assert con.execute("SELECT count(*) FROM shared.patient_condition(?)", [PATIENTS[0]]).fetchone() == (0,)


def test_same_instant_events_the_larger_id_wins():
    grant = {"patient": PATIENTS[0], "at": 60, "status": "active", "provision": "permit", "kinds": None,
             "grantees": None, "start": None, "end": None}
    withdraw = {**grant, "status": "inactive", "provision": "deny"}
    rec = {"patient": PATIENTS[0], "table": "condition", "kind_index": 0, "undelivered": False,
           "uninformed": False, "tombstoned": False}
    for events, visible in (([grant, withdraw], False), ([withdraw, grant], True)):
        con = connect(":memory:")
        _load(con, events, [rec])
        rows = con.execute("SELECT count(*) FROM shared.visible_condition(?, ?::TIMESTAMPTZ)",
                           [FACILITIES[0], _instant(90)]).fetchone()[0]
        assert rows == int(visible) == int(reference_visible(events, rec, "condition", FACILITIES[0], _instant(90)))
