"""Monthly measures per prefecture × facility segment, from the adoption_* facts (facts.py).

Each month is read at its last day (the as-of date for the current month). A facility is
    connected   when its 接続日 (registry) is on or before that day,
    sharing     when connected and an accepted bundle of it is dated within the 30 days ending that day,
    viewing     when connected and it viewed a record within those 30 days,
and counts the kinds of information it has sent (and that passed validation) by that day. Records received and
passed are those dated in the calendar month. Cells roll up to every prefecture (code 00) and to the segments
`hospital` (all bed bands) and `all`.
"""

from datetime import date

import duckdb
import polars as pl

from pipelines.reports.adoption.labels import MEASURES, SEGMENT_JA, SEGMENT_ORDER, SIX_KINDS, THREE_DOCUMENTS

WINDOW_DAYS = 30
NATIONAL = "00"

#: the counts of each cell (facilities, or kinds × facilities, or records)
_CELL_SUMS = ["registered", "applied", "connected", "sharing", "viewing", "kinds_sent", "documents_sent",
              "records_received", "records_passed", *[f"sent:{k}" for k in (*SIX_KINDS, *THREE_DOCUMENTS)]]


def build_months(con: duckdb.DuckDBPyConnection, first: date, as_of: date) -> None:
    """adoption_month: one row per calendar month from `first` to `as_of`, read on its last day."""
    # dates as literals: a query parameter would make DuckDB import pandas (~0.4 s of the report)
    end, start = f"DATE '{as_of.isoformat()}'", f"DATE '{min(first, as_of).isoformat()}'"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE adoption_month AS
        SELECT strftime(m, '%Y-%m') AS month, m::DATE AS month_start, least(last_day(m), {end}) AS snapshot_date
        FROM range(date_trunc('month', {start}), {end} + INTERVAL 1 DAY, INTERVAL 1 MONTH) AS t(m)
    """)


def _sent(kinds) -> str:
    return ", ".join(f"'sent:{k}'" for k in kinds)


def build_cells(con: duckdb.DuckDBPyConnection) -> None:
    """adoption_cell: month × prefecture × base segment (the bed bands, clinic, dental) with every count of
    _CELL_SUMS; reads adoption_month, the facts and adoption_view_month.

    Computed from the dated facts without a facility × month table (180,000 × 60 rows at national scale):
    a cumulative count (applied, connected, kinds sent) adds each facility once, in the month its date falls in
    (the first month for an earlier date; never for a date after the as-of day), and sums along the months — a
    kind counts from the later of its first day and the facility's 接続日. Sharing and viewing look, per facility
    and month, at the last day of activity in that month and in the two before it: a 30-day window reaches at
    most two months back (the window of a 1 March as-of date starts on 30 or 31 January), and every day counted
    is on or before the as-of date, so the last day alone decides whether the window holds one."""
    month_of = "year({0}) * 12 + month({0}) - 1"
    kinds = (*SIX_KINDS, *THREE_DOCUMENTS)
    sent = ",\n".join(f"count(*) FILTER (WHERE measure = 'sent:{k}') AS \"sent:{k}\"" for k in kinds)
    cumulative = ["applied", "connected", "kinds_sent", "documents_sent", *[f"sent:{k}" for k in kinds]]
    columns = {
        **{c: f'sum(coalesce(i."{c}", 0)) OVER running' for c in cumulative},
        "sharing": "coalesce(a.sharing, 0)", "viewing": "coalesce(a.viewing, 0)",
        "records_received": "coalesce(r.records_received, 0)", "records_passed": "coalesce(r.records_passed, 0)",
    }
    select = ",\n".join(f'CAST({columns[c]} AS BIGINT) AS "{c}"' for c in _CELL_SUMS if c != "registered")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE adoption_cell AS
        WITH month AS (
            SELECT month, month_start, snapshot_date, {month_of.format("month_start")} AS month_index
            FROM adoption_month
        ), span AS (
            SELECT min(month_index) AS first_index, max(snapshot_date) AS as_of FROM month
        ), facility AS (
            SELECT institution_number, prefecture_code, segment, applied_on, connected_on FROM adoption_facility
        ), dated AS (   -- one row per date from which a cumulative count includes a facility (or one of its kinds)
            SELECT prefecture_code, segment, applied_on AS d, 'applied' AS measure FROM facility
            UNION ALL SELECT prefecture_code, segment, connected_on, 'connected' FROM facility
            UNION ALL
            SELECT f.prefecture_code, f.segment, greatest(c.first_day, f.connected_on), 'sent:' || c.category
            FROM adoption_category_first c JOIN facility f USING (institution_number)
            WHERE c.first_day IS NOT NULL AND f.connected_on IS NOT NULL
        ), increment AS (
            SELECT prefecture_code, segment, greatest({month_of.format("d")}, first_index) AS month_index,
                   count(*) FILTER (WHERE measure = 'applied') AS applied,
                   count(*) FILTER (WHERE measure = 'connected') AS connected,
                   count(*) FILTER (WHERE measure IN ({_sent(SIX_KINDS)})) AS kinds_sent,
                   count(*) FILTER (WHERE measure IN ({_sent(THREE_DOCUMENTS)})) AS documents_sent,
                   {sent}
            FROM dated, span WHERE d <= as_of
            GROUP BY ALL
        ), activity AS (   -- facility × calendar month: its last day of activity (every day here is ≤ as_of)
            SELECT institution_number, {month_of.format("day")} AS month_index, max(day) AS last_day,
                   'sharing' AS measure
            FROM adoption_submission_day, span WHERE day <= as_of GROUP BY ALL
            UNION ALL SELECT institution_number, month_index, last_day, 'viewing' FROM adoption_view_month
        ), active AS (   -- facility × month whose window (the 30 days ending on its snapshot date) holds activity
            SELECT DISTINCT a.institution_number, m.month_index, a.measure
            FROM (SELECT *, unnest([month_index, month_index + 1, month_index + 2]) AS candidate FROM activity) a
            JOIN month m ON m.month_index = a.candidate
            WHERE a.last_day >= m.snapshot_date - INTERVAL {WINDOW_DAYS - 1} DAY
        ), active_cell AS (
            SELECT f.prefecture_code, f.segment, m.month_index,
                   count(*) FILTER (WHERE x.measure = 'sharing') AS sharing,
                   count(*) FILTER (WHERE x.measure = 'viewing') AS viewing
            FROM active x JOIN facility f USING (institution_number) JOIN month m USING (month_index)
            WHERE f.connected_on <= m.snapshot_date
            GROUP BY ALL
        ), record_cell AS (
            SELECT f.prefecture_code, f.segment, m.month_index, sum(r.received) AS records_received,
                   sum(r.passed) AS records_passed
            FROM adoption_records_day r JOIN facility f USING (institution_number)
            JOIN month m ON m.month_index = {month_of.format("r.day")} AND r.day <= m.snapshot_date
            GROUP BY ALL
        ), grid AS (
            SELECT g.prefecture_code, g.segment, g.registered, m.*
            FROM (SELECT prefecture_code, segment, count(*) AS registered FROM facility GROUP BY ALL) g
            CROSS JOIN month m
        )
        SELECT g.month, g.snapshot_date, g.prefecture_code, g.segment, CAST(g.registered AS BIGINT) AS registered,
               {select}
        FROM grid g
        LEFT JOIN increment i USING (prefecture_code, segment, month_index)
        LEFT JOIN active_cell a USING (prefecture_code, segment, month_index)
        LEFT JOIN record_cell r USING (prefecture_code, segment, month_index)
        WINDOW running AS (PARTITION BY g.prefecture_code, g.segment ORDER BY g.month_index
                           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    """)


def monthly_cells(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """grain: month × prefecture (00 = national) × segment; the counts every measure is a ratio of."""
    sums = ",\n".join(f'sum("{c}")::BIGINT AS "{c}"' for c in _CELL_SUMS)
    frame = con.sql(f"""
        WITH member AS (
            SELECT *, unnest(CASE WHEN segment LIKE 'hospital%' THEN [segment, 'hospital', 'all']
                                  ELSE [segment, 'all'] END) AS cell_segment
            FROM adoption_cell
        )
        SELECT month, snapshot_date, coalesce(prefecture_code, '{NATIONAL}') AS prefecture_code,
               cell_segment AS segment, {sums}
        FROM member
        GROUP BY GROUPING SETS ((month, snapshot_date, prefecture_code, cell_segment),
                                (month, snapshot_date, cell_segment))
    """).pl()
    return frame.sort("month", "prefecture_code", pl.col("segment").replace_strict(
        SEGMENT_ORDER, default=len(SEGMENT_ORDER)))


#: measure → (numerator column, denominator expression over the cell, what the denominator is)
_RATIOS = {
    "applied": ("applied", pl.col("registered")),
    "connected": ("connected", pl.col("registered")),
    "sharing": ("sharing", pl.col("connected")),
    "viewing": ("viewing", pl.col("connected")),
    "kind_coverage": ("kinds_sent", pl.col("connected") * len(SIX_KINDS)),
    "document_coverage": ("documents_sent", pl.col("connected") * len(THREE_DOCUMENTS)),
    "quality": ("records_passed", pl.col("records_received")),
    **{f"sent:{k}": (f"sent:{k}", pl.col("connected")) for k in (*SIX_KINDS, *THREE_DOCUMENTS)},
}


def rate_pct(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """Percentage with one decimal kept as full precision; null when there is nothing to divide by."""
    return pl.when(denominator > 0).then(numerator * 100.0 / denominator).otherwise(None)


def long_measures(cells: pl.DataFrame) -> pl.DataFrame:
    """grain: month × prefecture × segment × measure — numerator, denominator, rate and what the denominator is."""
    parts = []
    for measure, (numerator, denominator) in _RATIOS.items():
        ja, _, basis = MEASURES[measure]
        parts.append(cells.select(
            "month", "snapshot_date", "prefecture_code", "segment",
            pl.lit(measure).alias("measure"), pl.lit(ja).alias("measure_ja"),
            pl.col(numerator).cast(pl.Int64).alias("numerator"), denominator.cast(pl.Int64).alias("denominator"),
            pl.lit(f"{basis} (registry: core.facility)" if measure != "quality"
                   else f"{basis} (ops.record_outcome + ops.quarantine)").alias("denominator_basis"),
        ))
    frame = pl.concat(parts).with_columns(
        rate_pct=rate_pct(pl.col("numerator"), pl.col("denominator")),
        segment_ja=pl.col("segment").replace_strict(SEGMENT_JA, default=pl.col("segment")))
    return frame.select("month", "snapshot_date", "prefecture_code", "segment", "segment_ja", "measure",
                        "measure_ja", "numerator", "denominator", "rate_pct", "denominator_basis")


def facility_status(con: duckdb.DuckDBPyConnection, as_of: date) -> pl.DataFrame:
    """grain: one row per registered facility, read on the as-of date (facility counts and names are public)."""
    day = f"DATE '{as_of.isoformat()}'"
    kinds = ", ".join(f"'{k}'" for k in SIX_KINDS)
    docs = ", ".join(f"'{k}'" for k in THREE_DOCUMENTS)
    return con.sql(f"""
        WITH sub AS (SELECT institution_number, min(day) AS first_day, max(day) AS last_day FROM adoption_submission_day
                     WHERE day <= {day} GROUP BY ALL),
             vw AS (SELECT institution_number, min(first_day) AS first_day, max(last_day) AS last_day
                    FROM adoption_view_month GROUP BY ALL),  -- views up to as_of only
             cat AS (SELECT institution_number,
                            list(category ORDER BY category) FILTER (WHERE category IN ({kinds})) AS kinds,
                            list(category ORDER BY category) FILTER (WHERE category IN ({docs})) AS documents
                     FROM adoption_category_first WHERE first_day <= {day} GROUP BY ALL),
             rec AS (SELECT institution_number, sum(received)::BIGINT AS received, sum(passed)::BIGINT AS passed
                     FROM adoption_records_day WHERE day <= {day} GROUP BY ALL)
        SELECT f.institution_number, f.facility_name, f.prefecture_code, f.segment, f.facility_type, f.bed_count,
               f.bed_band, f.applied_on, f.connected_on,
               sub.first_day AS first_submission_on, sub.last_day AS last_submission_on,
               vw.first_day AS first_view_on, vw.last_day AS last_view_on,
               f.registry_first_submission_on, f.registry_first_view_on,
               coalesce(f.connected_on <= {day} AND sub.last_day > {day} - INTERVAL {WINDOW_DAYS} DAY, false)
                   AS is_sharing,
               coalesce(f.connected_on <= {day} AND vw.last_day > {day} - INTERVAL {WINDOW_DAYS} DAY, false)
                   AS is_viewing,
               array_to_string(coalesce(cat.kinds, []), ',') AS kinds_sent, len(coalesce(cat.kinds, [])) AS kinds_sent_count,
               array_to_string(coalesce(cat.documents, []), ',') AS documents_sent,
               len(coalesce(cat.documents, [])) AS documents_sent_count,
               coalesce(rec.received, 0) AS records_received, coalesce(rec.passed, 0) AS records_passed,
               CASE WHEN rec.received > 0 THEN rec.passed * 100.0 / rec.received END AS pass_rate_pct
        FROM adoption_facility f
        LEFT JOIN sub USING (institution_number) LEFT JOIN vw USING (institution_number)
        LEFT JOIN cat USING (institution_number) LEFT JOIN rec USING (institution_number)
        ORDER BY f.prefecture_code, f.institution_number
    """).pl()
