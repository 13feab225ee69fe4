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


def _robust(con, target: str, table: str, value: str, partition: str | None = None,
            histogram: str | None = None) -> None:
    """TEMP VIEW `target`: every row of `table` with peer_median, peers, peer_mad and robust_z (peers = the whole
    table, or each `partition`). The medians are taken over a histogram of the values (a national audit has ~10
    million staff-days but a few dozen distinct counts) — `histogram`, a SELECT of (partition, x, w), when the
    caller has a cheaper way to it — and kept in TEMP TABLE `target`_peer (a row per partition); the view
    computes z when read instead of copying the rows."""
    keys = [partition] if partition else []
    lead = "".join(k + ", " for k in keys)
    on = f"USING ({partition})" if partition else "ON true"
    histogram = histogram or f"SELECT {lead}CAST({value} AS DOUBLE) AS x, count(*) AS w FROM {table} GROUP BY ALL"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {target}_hist AS {histogram}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {target}_centre AS {_median_sql(f'{target}_hist', keys)}")
    deviation = f"""(SELECT {''.join('h.' + k + ', ' for k in keys)}abs(h.x - c.median) AS x, sum(h.w) AS w
                     FROM {target}_hist h JOIN {target}_centre c {on} GROUP BY ALL)"""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {target}_peer AS
        SELECT {''.join('c.' + k + ', ' for k in keys)}c.median AS peer_median, c.peers, s.median AS peer_mad
        FROM {target}_centre c JOIN ({_median_sql(deviation, keys)}) s {on}""")
    _with_z(con, target, table, f"{target}_peer", value, partition)


def _with_z(con, target: str, table: str, peer: str, value: str, partition: str | None = None) -> None:
    """TEMP VIEW `target`: the rows of `table` with the peer statistics of TEMP TABLE `peer` (made by _robust) and
    their robust z."""
    on = f"USING ({partition})" if partition else "ON true"
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW {target} AS
        SELECT t.*, p.peer_median, p.peers, p.peer_mad,
               (CAST(t.{value} AS DOUBLE) - p.peer_median) / greatest({R.MAD_TO_SD} * p.peer_mad, t.floor_) AS robust_z
        FROM {table} t JOIN {peer} p {on}""")


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
    """TEMP VIEWs audit_staff_day (every staff-day) / audit_facility_day (the days of facilities with a flagged
    day): distinct patients per day vs peers, flagged when abnormal; TEMP TABLEs audit_flagged_staff_day /
    audit_flagged_facility_day / audit_flagged_viewer. Staff-days are compared with every staff-day; facility-days
    with those of the same facility type."""
    flagged = f"n >= {R.VOLUME_MIN_PATIENTS} AND robust_z >= {R.ROBUST_Z}"
    # the counts: TEMP VIEWs audit_staff_day_all / audit_facility_day_all (pipelines/audit/aggregates.py)
    con.execute(f"""CREATE OR REPLACE TEMP VIEW audit_staff_day_n AS
                    SELECT *, {R.VOLUME_SCALE_FLOOR} AS floor_ FROM audit_staff_day_all""")
    _robust(con, "audit_staff_day_z", "audit_staff_day_n", "n")
    con.execute(f"CREATE OR REPLACE TEMP VIEW audit_staff_day AS SELECT *, {flagged} AS flagged FROM audit_staff_day_z")
    # the few flagged staff-days, kept: A-VOLUME finds their accesses by them (n first: z only for those)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE audit_flagged_staff_day AS SELECT viewer, staff_id, day_jst
                    FROM audit_staff_day WHERE n >= {R.VOLUME_MIN_PATIENTS} AND flagged""")

    def typed(where: str) -> str:  # facility-days matching `where`, with the viewer's facility type
        return f"""SELECT d.viewer, coalesce(f.facility_type, 'unknown') AS facility_type, d.day_jst, d.n,
                          {R.VOLUME_SCALE_FLOOR} AS floor_
                   FROM (SELECT viewer, day_jst, n FROM audit_facility_day_all WHERE {where}) d
                   LEFT JOIN core.facility f ON f.institution_number = d.viewer"""
    # peers: a histogram grouped by viewer first and typed after (180,000 facilities, not ~7 million
    # facility-days, go through the registry join); only the busy days and the flagged facilities' days are typed
    con.execute(f"CREATE OR REPLACE TEMP VIEW audit_facility_day_n AS {typed('true')}")
    histogram = """
        SELECT coalesce(f.facility_type, 'unknown') AS facility_type, h.x, sum(h.w) AS w
        FROM (SELECT viewer, CAST(n AS DOUBLE) AS x, count(*) AS w FROM audit_facility_day_all GROUP BY ALL) h
        LEFT JOIN core.facility f ON f.institution_number = h.viewer GROUP BY ALL"""
    _robust(con, "audit_facility_day_z", "audit_facility_day_n", "n", "facility_type", histogram)
    con.execute(f"CREATE OR REPLACE TEMP TABLE audit_facility_day_busy AS {typed(f'n >= {R.VOLUME_MIN_PATIENTS}')}")
    _with_z(con, "audit_facility_day_busy_z", "audit_facility_day_busy", "audit_facility_day_z_peer", "n",
            "facility_type")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE audit_flagged_facility_day AS SELECT viewer, day_jst
                    FROM audit_facility_day_busy_z WHERE {flagged}""")
    con.execute("""CREATE OR REPLACE TEMP TABLE audit_flagged_viewer AS
                   SELECT viewer FROM audit_flagged_staff_day UNION SELECT viewer FROM audit_flagged_facility_day""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE audit_facility_day_near AS
                    {typed("viewer IN (SELECT viewer FROM audit_flagged_viewer)")}""")
    _with_z(con, "audit_facility_day_near_z", "audit_facility_day_near", "audit_facility_day_z_peer", "n",
            "facility_type")
    con.execute(f"CREATE OR REPLACE TEMP VIEW audit_facility_day AS SELECT *, {flagged} AS flagged "
                "FROM audit_facility_day_near_z")


def volume_sql() -> str:
    # Only the accesses of a flagged staff-day or facility-day can be findings: found by semi-joins on the few
    # flagged days and their facilities, so the day tables (millions of rows) are joined to thousands of accesses.
    return """
        WITH at_flagged_viewer AS MATERIALIZED (   -- one pass over the accesses, on the viewer alone
            SELECT raw_id, viewer, staff_id, day_jst FROM audit_access SEMI JOIN audit_flagged_viewer USING (viewer)
        ), staff_day AS MATERIALIZED (   -- the staff-days (millions) narrowed to those viewers first
            SELECT * FROM audit_staff_day SEMI JOIN audit_flagged_viewer USING (viewer)
        ), candidate AS (
            SELECT * FROM at_flagged_viewer SEMI JOIN audit_flagged_staff_day USING (viewer, staff_id, day_jst)
            UNION
            SELECT * FROM at_flagged_viewer SEMI JOIN audit_flagged_facility_day USING (viewer, day_jst)
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
        LEFT JOIN staff_day s USING (viewer, staff_id, day_jst)
        JOIN audit_facility_day f USING (viewer, day_jst)
        WHERE coalesce(s.flagged, false) OR f.flagged"""
