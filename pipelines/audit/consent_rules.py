"""A-NO-CONSENT and A-AFTER-WITHDRAWAL: accesses (other than emergency access) that no consent covered.

"Covered" is the warehouse's one definition (pipelines/consent/coverage.py over core.consent_interval). For an
uncovered access the Consent in force at that instant (latest dateTime ≤ t, ties: larger id — docs/consent.md)
says why: none yet (no-consent), a withdrawal or deny (→ A-AFTER-WITHDRAWAL), outside its period, facility not a
grantee, or kind not granted (→ A-NO-CONSENT with that reason). An access whose log names no kind is checked
against every kind: the audit cannot assume the narrowest reading.
"""

import duckdb

from pipelines.consent.coverage import covering_interval_sql


def build_uncovered(con: duckdb.DuckDBPyConnection, source: str = "audit_access",
                    target: str = "audit_uncovered") -> None:
    """TEMP TABLE `target` (default audit_uncovered): one row per uncovered access of `source` (a view with
    audit_access's columns) with the Consent in force (emergency accesses included: A-EMERGENCY reports whether
    consent would have covered them).

    Coverage is a join on (patient, kind) filtered by the rest of the definition, then an anti-join on
    (access, kind): the same answer as `NOT covering_consent_sql(...)` per access and kind (a kind the log names
    twice is covered or not twice alike), without the de-duplication of ~10 million correlated rows that DuckDB
    runs before such an EXISTS."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {target}_kind AS
        WITH checked AS (
            SELECT raw_id, patient_key, viewer, recorded, unnest(kinds_checked) AS kind FROM {source}
        ), covered AS (
            SELECT c.raw_id, c.kind FROM checked c
            JOIN core.consent_interval ci ON ci.patient_key = c.patient_key AND ci.kind = c.kind
            WHERE {covering_interval_sql("ci", "c.viewer", "c.recorded")}
        )
        SELECT raw_id, list(kind ORDER BY kind) AS uncovered_kinds
        FROM checked ANTI JOIN covered USING (raw_id, kind)
        GROUP BY raw_id""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {target} AS
        WITH uncovered AS (
            SELECT a.raw_id, a.patient_key, a.recorded, a.viewer, u.uncovered_kinds
            FROM {source} a JOIN {target}_kind u USING (raw_id)
        ), head AS (   -- one Consent per patient and instant: on a tie the larger id is in force
            SELECT patient_key, event_time, max(consent_id) AS consent_id FROM core.consent_event
            WHERE patient_key IN (SELECT patient_key FROM uncovered) GROUP BY ALL
        ), consent AS (
            SELECT consent_id, any_value(status) AS status, any_value(provision_type) AS provision_type,
                   any_value(period_start) AS period_start, any_value(period_end) AS period_end,
                   list(grantee) FILTER (WHERE grantee IS NOT NULL) AS grantees
            FROM core.consent_event WHERE consent_id IN (SELECT consent_id FROM head) GROUP BY consent_id
        )
        SELECT u.raw_id, u.uncovered_kinds, h.consent_id, h.event_time AS consent_time,
               CASE WHEN h.consent_id IS NULL THEN 'no-consent'
                    WHEN c.status IS DISTINCT FROM 'active' OR c.provision_type IS DISTINCT FROM 'permit' THEN 'withdrawn'
                    WHEN u.recorded < c.period_start OR u.recorded >= c.period_end THEN 'outside-period'
                    WHEN len(coalesce(c.grantees, [])) > 0 AND NOT list_contains(c.grantees, u.viewer)
                        THEN 'facility-not-granted'
                    ELSE 'kind-not-granted' END AS reason
        FROM uncovered u
        ASOF LEFT JOIN head h ON u.patient_key = h.patient_key AND u.recorded >= h.event_time
        LEFT JOIN consent c ON c.consent_id = h.consent_id""")


_REASON_TEXT = """CASE reason
    WHEN 'no-consent' THEN 'no consent recorded for the patient before the access'
    WHEN 'outside-period' THEN 'outside the period of the consent in force'
    WHEN 'facility-not-granted' THEN 'the consent in force names other facilities as grantees'
    ELSE 'the consent in force does not share ' || array_to_string(uncovered_kinds, ', ') END"""


def no_consent_sql() -> str:
    return f"""
        SELECT raw_id, 'A-NO-CONSENT' AS rule_id, 1 AS weight,
               'Not covered by consent: ' || {_REASON_TEXT} || '.' AS explanation,
               json_object('reason', reason, 'uncovered_kinds', uncovered_kinds, 'consent_in_force', consent_id,
                           'consent_time', consent_time) AS evidence
        FROM audit_uncovered JOIN audit_access USING (raw_id) WHERE NOT emergency AND reason <> 'withdrawn'"""


def after_withdrawal_sql() -> str:
    return """
        SELECT raw_id, 'A-AFTER-WITHDRAWAL' AS rule_id, 1 AS weight,
               format('The patient withdrew consent at {} (Consent {}); this access came after it.',
                      strftime(timezone('Asia/Tokyo', consent_time), '%Y-%m-%d %H:%M JST'), consent_id) AS explanation,
               json_object('withdrawal_consent_id', consent_id, 'withdrawn_at', consent_time,
                           'uncovered_kinds', uncovered_kinds) AS evidence
        FROM audit_uncovered JOIN audit_access USING (raw_id) WHERE NOT emergency AND reason = 'withdrawn'"""
