"""What the audit keeps between reports, so a report over a national log (10 million accesses) reads aggregates
instead of recounting every access:

    reports.audit_staff_day     grain: viewer × staff_id × JST day — distinct patients viewed (A-VOLUME)
    reports.audit_facility_day  grain: viewer × JST day — distinct patients viewed (A-VOLUME)
    reports.audit_uncovered     grain: one row per access no consent covered (emergency accesses included), with the
                                Consent in force and why (A-NO-CONSENT, A-AFTER-WITHDRAWAL, A-EMERGENCY evidence)
    reports.audit_state         grain: one row — how far the three are maintained (raw_id read positions and the
                                row counts below them)

refresh_aggregates(con) brings them up to date from two read positions: new accesses (raw_id of
core.access_event above the position) have their JST days recounted whole (a distinct count is not additive, and a
late access can land on any day) and their coverage computed; a patient with new consent events (raw_id of
core.consent_event above its position) has the coverage of all their accesses recomputed — a Consent sent late can
change whether an earlier access was covered. Raw ids grow in arrival order (the raw step numbers them), which is
also what the hash chain relies on.

A report never depends on the refresh having run: select_day_counts / select_uncovered take the stored rows and
compute on the fly, with the same SQL, whatever arrived after the read positions, so the result always equals a
computation from scratch; the refresh only keeps that remainder small. If the rows below a read position are not
the ones counted then (a row deleted or slipped in by hand: the counts differ), the stored rows are ignored.
"""

from dataclasses import dataclass
from datetime import date, timedelta

import duckdb

from pipelines.audit import consent_rules
from pipelines.audit.window import AuditWindow
from pipelines.reports.jst import jst_day_sql, jst_midnight_sql
from pipelines.reports.stored_state import state_row

STATE_TABLES = ("audit_staff_day", "audit_facility_day", "audit_uncovered", "audit_state")


@dataclass(frozen=True)
class AuditState:
    access_raw_id: int  # accesses with raw_id ≤ this are in the stored aggregates
    access_rows: int  # … and there were this many of them
    consent_raw_id: int  # coverage reflects every consent event with raw_id ≤ this
    consent_rows: int


EMPTY = AuditState(0, 0, 0, 0)


def stored_state(con: duckdb.DuckDBPyConnection) -> AuditState:
    """The read positions of the stored aggregates, if they still describe the warehouse; EMPTY otherwise (never
    refreshed, a warehouse from before them, or rows below a position deleted or added since)."""
    row = state_row(con, STATE_TABLES,
                    "SELECT access_raw_id, access_rows, consent_raw_id, consent_rows FROM reports.audit_state")
    if row is None:
        return EMPTY
    state = AuditState(*row)
    now = con.execute(f"""
        SELECT (SELECT count(*) FROM core.access_event WHERE raw_id <= {state.access_raw_id}),
               (SELECT count(*) FROM core.consent_event WHERE raw_id <= {state.consent_raw_id})""").fetchone()
    return state if now == (state.access_rows, state.consent_rows) else EMPTY


def describe(con: duckdb.DuckDBPyConnection, state: AuditState) -> str:
    """One line for a report's footer: what it read from the stored aggregates and what it computed itself."""
    if state == EMPTY:
        return "no stored audit aggregates in use: every count and coverage computed for this report"
    refreshed = con.execute("SELECT refreshed_at FROM reports.audit_state").fetchone()[0]
    newer = con.execute(f"SELECT count(*) FROM core.access_event WHERE raw_id > {state.access_raw_id}").fetchone()[0]
    return (f"stored audit aggregates through access raw_id {state.access_raw_id} (refreshed {refreshed:%Y-%m-%d %H:%M} "
            f"UTC); {newer} later accesses counted for this report")


def _fresh_days(con: duckdb.DuckDBPyConnection, state: AuditState, through_raw_id: int | None = None) -> list[date]:
    """JST days that hold an access after the read position (up to through_raw_id)."""
    upto = "" if through_raw_id is None else f"AND raw_id <= {int(through_raw_id)}"
    return [d for (d,) in con.execute(f"""
        SELECT DISTINCT {jst_day_sql("recorded")} AS d FROM core.access_event
        WHERE raw_id > {state.access_raw_id} {upto} AND recorded IS NOT NULL ORDER BY d""").fetchall()]


def _on_days(days: list[date]) -> str:
    """SQL predicate on rows with `recorded` and `day_jst`: the JST day is one of `days` (instant bounds first, so
    DuckDB skips the row groups outside them)."""
    if not days:
        return "false"
    return (f"recorded >= {jst_midnight_sql(days[0])} AND recorded < {jst_midnight_sql(days[-1] + timedelta(days=1))} "
            f"AND {_day_in(days)}")


def _day_in(days: list[date]) -> str:
    return f"day_jst IN ({', '.join(repr(d.isoformat()) + '::DATE' for d in days)})"


def _day_counts_sql(source: str, where: str) -> tuple[str, str]:
    """SELECTs of staff-day and facility-day distinct-patient counts over `source` rows matching `where`."""
    staff = f"""SELECT viewer, staff_id, day_jst, count(DISTINCT patient_key) AS n FROM {source}
                WHERE staff_id IS NOT NULL AND {where} GROUP BY ALL"""
    facility = f"SELECT viewer, day_jst, count(DISTINCT patient_key) AS n FROM {source} WHERE {where} GROUP BY ALL"
    return staff, facility


def _accesses_sql() -> str:
    """core.access_event with its JST day (the columns the stored aggregates need)."""
    return f"(SELECT *, {jst_day_sql('recorded')} AS day_jst FROM core.access_event WHERE recorded IS NOT NULL)"


def select_day_counts(con: duckdb.DuckDBPyConnection, window: AuditWindow, state: AuditState) -> None:
    """TEMP VIEWs audit_staff_day_all(viewer, staff_id, day_jst, n) and audit_facility_day_all(viewer, day_jst, n)
    over the window's days: the stored counts, with the days that have accesses after the read position recounted
    from TEMP VIEW audit_access (pipelines/audit/findings.py) — every day when nothing usable is stored."""
    fresh = [] if state == EMPTY else _fresh_days(con, state)
    staff, facility = _day_counts_sql("audit_access", "true" if state == EMPTY else _on_days(fresh))
    con.execute(f"CREATE OR REPLACE TEMP TABLE audit_staff_day_fresh AS {staff}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE audit_facility_day_fresh AS {facility}")
    if state == EMPTY:  # nothing stored: everything was recounted
        stored_staff = stored_facility = ""
    else:
        kept = [f"day_jst >= DATE '{window.date_from.isoformat()}'"] if window.date_from else []
        kept.append(f"day_jst <= DATE '{(window.date_to or window.as_of).isoformat()}'")
        if fresh:
            kept.append(f"NOT {_day_in(fresh)}")
        where = " AND ".join(kept)
        stored_staff = f"SELECT viewer, staff_id, day_jst, n FROM reports.audit_staff_day WHERE {where} UNION ALL "
        stored_facility = f"SELECT viewer, day_jst, n FROM reports.audit_facility_day WHERE {where} UNION ALL "
    con.execute(f"""CREATE OR REPLACE TEMP VIEW audit_staff_day_all AS
                    {stored_staff}SELECT viewer, staff_id, day_jst, n FROM audit_staff_day_fresh""")
    con.execute(f"""CREATE OR REPLACE TEMP VIEW audit_facility_day_all AS
                    {stored_facility}SELECT viewer, day_jst, n FROM audit_facility_day_fresh""")


def _superseded(con: duckdb.DuckDBPyConnection, state: AuditState, alias: str = "",
                consent_upto: int | None = None) -> str:
    """SQL predicate: an access whose stored coverage is out of date — after the access read position, or of a
    patient with consent events after the consent read position (up to consent_upto)."""
    a = f"{alias}." if alias else ""
    upto = "" if consent_upto is None else f" AND raw_id <= {int(consent_upto)}"
    newer = f"raw_id > {state.consent_raw_id}{upto}"
    if not con.execute(f"SELECT count(*) FROM core.consent_event WHERE {newer}").fetchone()[0]:
        return f"{a}raw_id > {state.access_raw_id}"  # (a semi-join on an empty list still reads every access)
    return (f"({a}raw_id > {state.access_raw_id} OR {a}patient_key IN "
            f"(SELECT patient_key FROM core.consent_event WHERE {newer}))")


def select_uncovered(con: duckdb.DuckDBPyConnection, window: AuditWindow, state: AuditState) -> None:
    """TEMP VIEW audit_uncovered (pipelines/audit/consent_rules.py) over the window: the stored rows, and the
    accesses after the read position or of patients with newer consent events computed now."""
    if state == EMPTY:
        consent_rules.build_uncovered(con)
        return
    con.execute(f"CREATE OR REPLACE TEMP VIEW audit_access_fresh AS SELECT * FROM audit_access "
                f"WHERE {_superseded(con, state)}")
    consent_rules.build_uncovered(con, source="audit_access_fresh", target="audit_uncovered_fresh")
    kept = [f"s.recorded >= {window.start_sql}", f"s.recorded < {window.end_sql}",
            f"NOT {_superseded(con, state, 's')}"]
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW audit_uncovered AS
        SELECT s.raw_id, s.uncovered_kinds, s.consent_id, s.consent_time, s.reason FROM reports.audit_uncovered s
        WHERE {' AND '.join(kept)}
        UNION ALL SELECT raw_id, uncovered_kinds, consent_id, consent_time, reason FROM audit_uncovered_fresh""")


def refresh_aggregates(con: duckdb.DuckDBPyConnection, through_raw_id: int | None = None) -> dict:
    """Bring the stored aggregates up to date (or up to the access raw_id `through_raw_id`), in one transaction.
    Returns what was done: days recounted, accesses whose coverage was recomputed, the new read positions."""
    from pipelines.audit.findings import access_columns_sql

    con.execute("BEGIN TRANSACTION")
    try:
        _create_tables(con)
        state = stored_state(con)
        if state == EMPTY:  # nothing usable stored: start again from nothing
            for table in STATE_TABLES:
                con.execute(f"DELETE FROM reports.{table}")
        top_access = con.execute("SELECT coalesce(max(raw_id), 0) FROM core.access_event").fetchone()[0]
        upto = top_access if through_raw_id is None else min(int(through_raw_id), top_access)
        top_consent = con.execute("SELECT coalesce(max(raw_id), 0) FROM core.consent_event").fetchone()[0]
        fresh = _fresh_days(con, state, upto)
        # a day is recounted whole, from the accesses up to the new read position
        where = f"raw_id <= {upto} AND {_on_days(fresh)}"
        staff, facility = _day_counts_sql(_accesses_sql(), where)
        if fresh:
            con.execute(f"DELETE FROM reports.audit_staff_day WHERE {_day_in(fresh)}")
            con.execute(f"DELETE FROM reports.audit_facility_day WHERE {_day_in(fresh)}")
            con.execute(f"INSERT INTO reports.audit_staff_day {staff}")
            con.execute(f"INSERT INTO reports.audit_facility_day {facility}")
        # coverage: new accesses, and every access of a patient with new consent events
        stale = _superseded(con, state, "a", consent_upto=top_consent)
        con.execute("CREATE OR REPLACE TEMP VIEW audit_refresh_access AS "
                    + access_columns_sql(f"a.raw_id <= {upto} AND a.recorded IS NOT NULL AND {stale}"))
        recomputed = con.execute("SELECT count(*) FROM audit_refresh_access").fetchone()[0]
        consent_rules.build_uncovered(con, source="audit_refresh_access", target="audit_refresh_uncovered")
        con.execute("DELETE FROM reports.audit_uncovered WHERE raw_id IN (SELECT raw_id FROM audit_refresh_access)")
        con.execute("""INSERT INTO reports.audit_uncovered
                       SELECT u.raw_id, a.patient_key, a.recorded, a.day_jst, u.uncovered_kinds, u.consent_id,
                              u.consent_time, u.reason
                       FROM audit_refresh_uncovered u JOIN audit_refresh_access a USING (raw_id)""")
        rows = con.execute(f"""SELECT (SELECT count(*) FROM core.access_event WHERE raw_id <= {upto}),
                                      (SELECT count(*) FROM core.consent_event WHERE raw_id <= {top_consent})"""
                           ).fetchone()
        con.execute("DELETE FROM reports.audit_state")
        con.execute(f"INSERT INTO reports.audit_state VALUES ({upto}, {rows[0]}, {top_consent}, {rows[1]}, now())")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return {"days_recounted": len(fresh), "coverage_recomputed": recomputed, "access_raw_id": upto,
            "consent_raw_id": top_consent}


def _create_tables(con: duckdb.DuckDBPyConnection) -> None:
    # here rather than in schema.sql: only this module writes or reads them, and a report on a warehouse without
    # them simply computes everything (stored_state → EMPTY)
    con.execute("""
        CREATE TABLE IF NOT EXISTS reports.audit_staff_day (viewer VARCHAR, staff_id VARCHAR, day_jst DATE, n BIGINT);
        CREATE TABLE IF NOT EXISTS reports.audit_facility_day (viewer VARCHAR, day_jst DATE, n BIGINT);
        CREATE TABLE IF NOT EXISTS reports.audit_uncovered (raw_id BIGINT, patient_key VARCHAR, recorded TIMESTAMPTZ,
            day_jst DATE, uncovered_kinds VARCHAR[], consent_id VARCHAR, consent_time TIMESTAMPTZ, reason VARCHAR);
        CREATE TABLE IF NOT EXISTS reports.audit_state (access_raw_id BIGINT, access_rows BIGINT,
            consent_raw_id BIGINT, consent_rows BIGINT, refreshed_at TIMESTAMPTZ)""")
