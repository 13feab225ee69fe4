"""A-EMERGENCY and A-VOLUME: rules that compare a facility or a staff member with its peers.

Both use the modified z-score (Iglewicz & Hoaglin), robust to the very outliers it looks for:
    z = (x - median of peers) / max(1.4826 × MAD of peers, floor)
MAD = median absolute deviation; 1.4826 × MAD estimates the standard deviation of normal data; the floor keeps
z finite when most peers share one value (MAD 0). A value is abnormal at z ≥ 3.5 (rules.ROBUST_Z), and only above
an absolute minimum, so a quiet facility or day never triggers. Peers are taken within the audit window.
"""

from pipelines.audit import rules as R


def _median_sql(histogram: str, keys: list[str]) -> str:
    """SELECT keys, median, peers: DuckDB's median (quantile_cont 0.5) of a histogram `histogram`(keys, x, w) — the
    values at 0-based positions (N-1)//2 and N//2 of the sorted list, interpolated as DuckDB does
    (lo + (hi - lo) × 0.5), so the result is the very double median() gives over the individual rows."""
    lead = "".join(k + ", " for k in keys)
    part = f"PARTITION BY {', '.join(keys)}" if keys else ""
    return f"""
        SELECT {lead}lo + (hi - lo) * 0.5 AS median, peers FROM (
            SELECT {lead}min(x) FILTER (WHERE upto > (total - 1) // 2) AS lo,
                   min(x) FILTER (WHERE upto > total // 2) AS hi, CAST(coalesce(any_value(total), 0) AS BIGINT) AS peers
            FROM (SELECT *, sum(w) OVER ({part} ORDER BY x ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto,
                         sum(w) OVER ({part}) AS total FROM {histogram})
            {f"GROUP BY {', '.join(keys)}" if keys else ""})"""


def _robust(con, target: str, table: str, value: str, partition: str | None = None) -> None:
    """TEMP VIEW `target`: every row of `table` with peer_median, peers, peer_mad and robust_z (peers = the whole
    table, or each `partition`). The medians are taken over a histogram of the values (a national audit has ~10
    million staff-days but a few dozen distinct counts) and kept in TEMP TABLE `target`_peer (a row per
    partition); the view computes z when read instead of copying the rows."""
    keys = [partition] if partition else []
    lead = "".join(k + ", " for k in keys)
    on = f"USING ({partition})" if partition else "ON true"
    x = f"CAST(t.{value} AS DOUBLE)"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {target}_hist AS
                    SELECT {lead}CAST({value} AS DOUBLE) AS x, count(*) AS w FROM {table} GROUP BY ALL""")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {target}_centre AS {_median_sql(f'{target}_hist', keys)}")
    deviation = f"""(SELECT {''.join('h.' + k + ', ' for k in keys)}abs(h.x - c.median) AS x, sum(h.w) AS w
                     FROM {target}_hist h JOIN {target}_centre c {on} GROUP BY ALL)"""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {target}_peer AS
        SELECT {''.join('c.' + k + ', ' for k in keys)}c.median AS peer_median, c.peers, s.median AS peer_mad
        FROM {target}_centre c JOIN ({_median_sql(deviation, keys)}) s {on}""")
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW {target} AS
        SELECT t.*, p.peer_median, p.peers, p.peer_mad,
               ({x} - p.peer_median) / greatest({R.MAD_TO_SD} * p.peer_mad, t.floor_) AS robust_z
        FROM {table} t JOIN {target}_peer p {on}""")


def build_emergency_share(con) -> None:
    """TEMP TABLE audit_emergency_share: per facility with accesses in the window, its emergency share vs peers."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE audit_emergency_facility AS
        SELECT viewer, count(*) AS accesses, count(*) FILTER (WHERE emergency) AS emergencies,
               count(*) FILTER (WHERE emergency) / count(*) AS share, {R.EMERGENCY_SCALE_FLOOR} AS floor_
        FROM audit_access GROUP BY viewer""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE audit_emergency_candidate AS
                    SELECT * FROM audit_emergency_facility WHERE accesses >= {R.EMERGENCY_MIN_ACCESSES}""")
    _robust(con, "audit_emergency_peer", "audit_emergency_candidate", "share")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE audit_emergency_share AS
        SELECT f.viewer, f.accesses, f.emergencies, f.share, p.peer_median, p.peer_mad, p.peers, p.robust_z,
               coalesce(p.peers >= {R.EMERGENCY_MIN_PEERS} AND f.emergencies >= {R.EMERGENCY_MIN_COUNT}
                        AND p.robust_z >= {R.ROBUST_Z}, false) AS elevated
        FROM audit_emergency_facility f LEFT JOIN audit_emergency_peer p USING (viewer)""")


def emergency_sql() -> str:
    return f"""
        SELECT a.raw_id, 'A-EMERGENCY' AS rule_id,
               CASE WHEN s.elevated THEN {R.ELEVATED_WEIGHT} ELSE 1 END AS weight,
               'Emergency access (ETREAT): allowed without consent, listed for review'
               || CASE WHEN u.raw_id IS NULL THEN '; consent would have covered it' ELSE '; no consent covered it' END
               || CASE WHEN c.viewer IS NULL THEN '; no care relationship' ELSE '' END
               || CASE WHEN s.elevated THEN format('. Weight {R.ELEVATED_WEIGHT}: the facility''s emergency share '
                       || '{{:.1f}}% ({{}} of {{}}) is far above its {{}} peers'' median {{:.1f}}% (robust z {{:.1f}}).',
                       100 * s.share, s.emergencies, s.accesses, s.peers, 100 * s.peer_median, s.robust_z)
                       ELSE '.' END AS explanation,
               json_object('consent_covered', u.raw_id IS NULL, 'care_relationship', c.viewer IS NOT NULL,
                           'facility_accesses', s.accesses, 'facility_emergencies', s.emergencies,
                           'facility_share', s.share, 'peer_median', s.peer_median, 'peer_mad', s.peer_mad,
                           'peers', s.peers, 'robust_z', s.robust_z, 'elevated', s.elevated) AS evidence
        FROM audit_access a
        JOIN audit_emergency_share s USING (viewer)
        LEFT JOIN audit_uncovered u USING (raw_id)
        LEFT JOIN audit_care c ON c.viewer = a.viewer AND c.patient_key = a.patient_key
        WHERE a.emergency"""


def build_busy_days(con) -> None:
    """TEMP VIEWs audit_staff_day / audit_facility_day: distinct patients per day vs peers, flagged when abnormal.
    Staff-days are compared with every staff-day; facility-days with those of the same facility type."""
    flagged = f"n >= {R.VOLUME_MIN_PATIENTS} AND robust_z >= {R.ROBUST_Z}"
    # the counts: TEMP VIEWs audit_staff_day_all / audit_facility_day_all (pipelines/audit/aggregates.py)
    con.execute(f"""CREATE OR REPLACE TEMP VIEW audit_staff_day_n AS
                    SELECT *, {R.VOLUME_SCALE_FLOOR} AS floor_ FROM audit_staff_day_all""")
    _robust(con, "audit_staff_day_z", "audit_staff_day_n", "n")
    con.execute(f"CREATE OR REPLACE TEMP VIEW audit_staff_day AS SELECT *, {flagged} AS flagged FROM audit_staff_day_z")
    # the facility type is the viewer's: grouped by viewer and day first, typed after (180,000 facilities, not
    # 10 million accesses, go through the registry join)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE audit_facility_day_n AS
        SELECT d.viewer, coalesce(f.facility_type, 'unknown') AS facility_type, d.day_jst, d.n,
               {R.VOLUME_SCALE_FLOOR} AS floor_
        FROM audit_facility_day_all d
        LEFT JOIN core.facility f ON f.institution_number = d.viewer""")
    _robust(con, "audit_facility_day_z", "audit_facility_day_n", "n", "facility_type")
    con.execute(f"CREATE OR REPLACE TEMP VIEW audit_facility_day AS SELECT *, {flagged} AS flagged "
                "FROM audit_facility_day_z")


def volume_sql() -> str:
    # Only the accesses of a flagged staff-day or facility-day can be findings: found by semi-joins on the few
    # flagged days, so the day tables (millions of rows) are joined to thousands of accesses, not to all.
    return """
        WITH candidate AS (
            SELECT raw_id, viewer, staff_id, day_jst FROM audit_access
            SEMI JOIN (SELECT viewer, staff_id, day_jst FROM audit_staff_day WHERE flagged) USING (viewer, staff_id, day_jst)
            UNION
            SELECT raw_id, viewer, staff_id, day_jst FROM audit_access
            SEMI JOIN (SELECT viewer, day_jst FROM audit_facility_day WHERE flagged) USING (viewer, day_jst)
        )
        SELECT a.raw_id, 'A-VOLUME' AS rule_id, 1 AS weight,
               concat_ws('; ',
                   CASE WHEN s.flagged THEN format('Staff member {} viewed {} distinct patients on {} (peer staff-days: '
                        || 'median {}, robust z {:.1f})', a.staff_id, s.n, a.day_jst, s.peer_median, s.robust_z) END,
                   CASE WHEN f.flagged THEN format('the facility viewed {} distinct patients that day ({} facility-days: '
                        || 'median {}, robust z {:.1f})', f.n, f.facility_type, f.peer_median, f.robust_z) END)
               || '.' AS explanation,
               json_object('day', a.day_jst, 'staff_day_flagged', coalesce(s.flagged, false),
                           'staff_day_patients', s.n, 'staff_peer_median', s.peer_median, 'staff_peer_mad', s.peer_mad,
                           'staff_robust_z', s.robust_z, 'facility_day_flagged', f.flagged,
                           'facility_day_patients', f.n, 'facility_peer_median', f.peer_median,
                           'facility_peer_mad', f.peer_mad, 'facility_robust_z', f.robust_z) AS evidence
        FROM candidate a
        LEFT JOIN audit_staff_day s USING (viewer, staff_id, day_jst)
        JOIN audit_facility_day f USING (viewer, day_jst)
        WHERE coalesce(s.flagged, false) OR f.flagged"""
