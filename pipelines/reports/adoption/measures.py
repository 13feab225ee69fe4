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

#: the facility × month flags summed into each cell
_CELL_SUMS = ["registered", "applied", "connected", "sharing", "viewing", "kinds_sent", "documents_sent",
              "records_received", "records_passed", *[f"sent:{k}" for k in (*SIX_KINDS, *THREE_DOCUMENTS)]]


def build_months(con: duckdb.DuckDBPyConnection, first: date, as_of: date) -> None:
    """adoption_month: one row per calendar month from `first` to `as_of`, read on its last day."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE adoption_month AS
        SELECT strftime(m, '%Y-%m') AS month, m::DATE AS month_start, least(last_day(m), ?::DATE) AS snapshot_date
        FROM range(date_trunc('month', ?::DATE), ?::DATE + INTERVAL 1 DAY, INTERVAL 1 MONTH) AS t(m)
    """, [as_of, min(first, as_of), as_of])


def build_facility_months(con: duckdb.DuckDBPyConnection) -> None:
    """adoption_facility_month: one row per registered facility × month with its flags."""
    sent = ",\n".join(
        f"coalesce(bool_or(c.category = '{k}'), false) AS \"sent:{k}\"" for k in (*SIX_KINDS, *THREE_DOCUMENTS))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE adoption_facility_month AS
        WITH fm AS (
            SELECT m.month, m.month_start, m.snapshot_date, f.institution_number, f.prefecture_code, f.segment,
                   coalesce(f.applied_on <= m.snapshot_date, false) AS applied,
                   coalesce(f.connected_on <= m.snapshot_date, false) AS connected
            FROM adoption_facility f CROSS JOIN adoption_month m
        ),
        shared AS (
            SELECT DISTINCT m.month, s.institution_number FROM adoption_month m JOIN adoption_submission_day s
              ON s.day BETWEEN m.snapshot_date - INTERVAL {WINDOW_DAYS - 1} DAY AND m.snapshot_date
        ),
        viewed AS (
            SELECT DISTINCT m.month, v.institution_number FROM adoption_month m JOIN adoption_view_day v
              ON v.day BETWEEN m.snapshot_date - INTERVAL {WINDOW_DAYS - 1} DAY AND m.snapshot_date
        ),
        categories AS (
            SELECT m.month, c.institution_number,
                   count(*) FILTER (WHERE c.category IN ({', '.join(f"'{k}'" for k in SIX_KINDS)})) AS kinds_sent,
                   count(*) FILTER (WHERE c.category IN ({', '.join(f"'{k}'" for k in THREE_DOCUMENTS)}))
                       AS documents_sent,
                   {sent}
            FROM adoption_month m JOIN adoption_category_first c ON c.first_day <= m.snapshot_date
            GROUP BY ALL
        ),
        records AS (
            SELECT m.month, r.institution_number, sum(r.received) AS records_received, sum(r.passed) AS records_passed
            FROM adoption_month m JOIN adoption_records_day r ON r.day BETWEEN m.month_start AND m.snapshot_date
            GROUP BY ALL
        )
        SELECT fm.*,
               fm.connected AND s.institution_number IS NOT NULL AS sharing,
               fm.connected AND v.institution_number IS NOT NULL AS viewing,
               CASE WHEN fm.connected THEN coalesce(c.kinds_sent, 0) ELSE 0 END AS kinds_sent,
               CASE WHEN fm.connected THEN coalesce(c.documents_sent, 0) ELSE 0 END AS documents_sent,
               {', '.join(f'fm.connected AND coalesce(c."sent:{k}", false) AS "sent:{k}"'
                          for k in (*SIX_KINDS, *THREE_DOCUMENTS))},
               coalesce(r.records_received, 0) AS records_received, coalesce(r.records_passed, 0) AS records_passed
        FROM fm
        LEFT JOIN shared s ON s.month = fm.month AND s.institution_number = fm.institution_number
        LEFT JOIN viewed v ON v.month = fm.month AND v.institution_number = fm.institution_number
        LEFT JOIN categories c ON c.month = fm.month AND c.institution_number = fm.institution_number
        LEFT JOIN records r ON r.month = fm.month AND r.institution_number = fm.institution_number
    """)


def monthly_cells(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """grain: month × prefecture (00 = national) × segment; the counts every measure is a ratio of."""
    sums = ",\n".join(
        f'count(*)::BIGINT AS "{c}"' if c == "registered"
        else f'sum("{c}")::BIGINT AS "{c}"' if c in ("kinds_sent", "documents_sent", "records_received",
                                                     "records_passed")
        else f'count(*) FILTER (WHERE "{c}")::BIGINT AS "{c}"' for c in _CELL_SUMS)
    frame = con.sql(f"""
        WITH member AS (
            SELECT *, unnest(CASE WHEN segment LIKE 'hospital%' THEN [segment, 'hospital', 'all']
                                  ELSE [segment, 'all'] END) AS cell_segment
            FROM adoption_facility_month
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
    kinds = ", ".join(f"'{k}'" for k in SIX_KINDS)
    docs = ", ".join(f"'{k}'" for k in THREE_DOCUMENTS)
    return con.sql(f"""
        WITH sub AS (SELECT institution_number, min(day) AS first_day, max(day) AS last_day FROM adoption_submission_day
                     WHERE day <= $as_of GROUP BY ALL),
             vw AS (SELECT institution_number, min(day) AS first_day, max(day) AS last_day FROM adoption_view_day
                    WHERE day <= $as_of GROUP BY ALL),
             cat AS (SELECT institution_number,
                            list(category ORDER BY category) FILTER (WHERE category IN ({kinds})) AS kinds,
                            list(category ORDER BY category) FILTER (WHERE category IN ({docs})) AS documents
                     FROM adoption_category_first WHERE first_day <= $as_of GROUP BY ALL),
             rec AS (SELECT institution_number, sum(received)::BIGINT AS received, sum(passed)::BIGINT AS passed
                     FROM adoption_records_day WHERE day <= $as_of GROUP BY ALL)
        SELECT f.institution_number, f.facility_name, f.prefecture_code, f.segment, f.facility_type, f.bed_count,
               f.bed_band, f.applied_on, f.connected_on,
               sub.first_day AS first_submission_on, sub.last_day AS last_submission_on,
               vw.first_day AS first_view_on, vw.last_day AS last_view_on,
               f.registry_first_submission_on, f.registry_first_view_on,
               coalesce(f.connected_on <= $as_of AND sub.last_day > $as_of - INTERVAL {WINDOW_DAYS} DAY, false)
                   AS is_sharing,
               coalesce(f.connected_on <= $as_of AND vw.last_day > $as_of - INTERVAL {WINDOW_DAYS} DAY, false)
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
    """, params={"as_of": as_of}).pl()
