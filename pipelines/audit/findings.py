"""Audit findings, set-based in DuckDB: one row per access × rule (pipelines/audit/rules.py) with its evidence.

    compute_findings(con, window)  → TEMP TABLE audit_finding (works on a read-only connection: `karte report`)
    store_findings(con)            → reports.audit_finding (the Dagster asset)

Every rule is one SELECT over TEMP VIEW audit_access (the window's accesses) giving
(raw_id, rule_id, weight, explanation, evidence JSON); the common columns are joined on at the end.
"""

import duckdb

from pipelines.audit import access_rules, aggregates, consent_rules, peer_rules
from pipelines.audit.roles import load_staff_roles
from pipelines.audit.window import AuditWindow
from pipelines.fhir.systems import INFORMATION_KINDS
from pipelines.reports.jst import jst_day_sql

_ALL_KINDS = "[" + ", ".join(f"'{k}'" for k in INFORMATION_KINDS) + "]"

RULE_QUERIES = {
    "A-NO-CONSENT": consent_rules.no_consent_sql,
    "A-AFTER-WITHDRAWAL": consent_rules.after_withdrawal_sql,
    "A-EMERGENCY": peer_rules.emergency_sql,
    "A-ROLE": access_rules.role_sql,
    "A-UNDELIVERED": access_rules.undelivered_sql,
    "A-VOLUME": peer_rules.volume_sql,
    "A-NO-CARE": access_rules.no_care_sql,
}

FINDING_COLUMNS = """
    access_id VARCHAR, rule_id VARCHAR, weight INTEGER, patient_key VARCHAR, viewer VARCHAR, staff_id VARCHAR,
    staff_role VARCHAR, recorded TIMESTAMPTZ, day_jst DATE, purpose VARCHAR, kinds VARCHAR[],
    explanation VARCHAR, evidence JSON, as_of DATE, window_from DATE, window_to DATE"""


def _drop_temp(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop TEMP table or view `name` if present (an older session may hold either)."""
    # `name` is one of this package's constants; a literal, as a query parameter would make DuckDB import pandas
    for kind, in con.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = 'main' "
                             f"AND table_catalog = 'temp' AND table_name = '{name}'").fetchall():
        con.execute(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} temp.main.{name}")


def access_columns_sql(where: str) -> str:
    """SELECT of the core.access_event rows (alias a) matching `where` with the columns the rules read (+ JST day,
    kinds to check); raw_id is the key the rules use (an integer: cheaper to join than access_id)."""
    return f"""
        SELECT a.raw_id, a.access_id, a.patient_key, a.viewer, a.staff_id, a.staff_role, a.recorded, a.purpose,
               a.kinds, coalesce(a.resource_refs, []::VARCHAR[]) AS resource_refs,
               CASE WHEN len(coalesce(a.kinds, [])) = 0 THEN {_ALL_KINDS} ELSE a.kinds END AS kinds_checked,
               {jst_day_sql("a.recorded")} AS day_jst,
               coalesce(a.purpose = 'ETREAT', false) AS emergency
        FROM core.access_event a
        WHERE {where}"""


def select_accesses(con: duckdb.DuckDBPyConnection, window: AuditWindow) -> int:
    """TEMP VIEW audit_access: the accesses the audit covers. A view, not a table: each rule reads only the columns
    it needs, and a national log (10 million rows, kinds and resource lists) is never copied."""
    _drop_temp(con, "audit_access")
    con.execute("CREATE TEMP VIEW audit_access AS "
                + access_columns_sql(f"a.recorded >= {window.start_sql} AND a.recorded < {window.end_sql}"))
    return con.execute("SELECT count(*) FROM audit_access").fetchone()[0]


def compute_findings(con: duckdb.DuckDBPyConnection, window: AuditWindow) -> int:
    """Evaluate every rule over the window; returns the number of findings in TEMP TABLE audit_finding.
    Per-day counts and consent coverage come from the stored aggregates (pipelines/audit/aggregates.py) plus
    whatever arrived after them, computed here."""
    select_accesses(con, window)
    load_staff_roles(con)
    state = aggregates.stored_state(con)
    access_rules.build_care(con, window)
    _drop_temp(con, "audit_uncovered")  # a table or a view, depending on what is stored
    aggregates.select_uncovered(con, window, state)
    peer_rules.build_emergency_share(con)
    aggregates.select_day_counts(con, window, state)
    peer_rules.build_busy_days(con)
    union = "\nUNION ALL ".join(f"({query()})" for query in RULE_QUERIES.values())
    win_from = f"DATE '{window.date_from}'" if window.date_from else "CAST(NULL AS DATE)"
    con.execute(f"CREATE OR REPLACE TEMP TABLE audit_finding ({FINDING_COLUMNS})")
    con.execute(f"""
        INSERT INTO audit_finding
        SELECT a.access_id, f.rule_id, f.weight, a.patient_key, a.viewer, a.staff_id, a.staff_role, a.recorded,
               a.day_jst, a.purpose, a.kinds, f.explanation, f.evidence, DATE '{window.as_of}', {win_from},
               DATE '{window.date_to or window.as_of}'
        FROM ({union}) f JOIN audit_access a USING (raw_id)
        ORDER BY a.recorded, a.access_id, f.rule_id""")
    return con.execute("SELECT count(*) FROM audit_finding").fetchone()[0]


def store_findings(con: duckdb.DuckDBPyConnection) -> int:
    """reports.audit_finding ← TEMP audit_finding (grain: one row per access × rule)."""
    con.execute("CREATE OR REPLACE TABLE reports.audit_finding AS SELECT * FROM audit_finding")
    return con.execute("SELECT count(*) FROM reports.audit_finding").fetchone()[0]
