"""Per-facility facts behind every adoption measure, as TEMP tables on the report's connection (DuckDB SQL).

    adoption_facility          one row per registered facility (core.facility) with its segment
    adoption_submission_day    institution × day with at least one accepted bundle (staging.bundle.accepted)
    adoption_view_month        institution × JST calendar month: first and last day with a successful view
                               (core.access_event), up to the as-of day (build_view_months, once as_of is known)
    adoption_category_first    institution × kind of information: the first day it was sent and passed validation
    adoption_records_day       institution × day: records received, records that passed (not quarantined)

Days are the sender's own calendar day: Bundle.timestamp (JP-CLINS requires it; its local date is JST), else the
date in the file name (<医療機関番号>_<YYYYMMDD>_…), else the day the file landed. Dating by arrival instead would
put a backfilled or replayed inbox all into one month. Views are dated in Asia/Tokyo.

At national scale (180,000 facilities, 10 million views) no table here has a row per view or per facility-day of
views: 10 million views are ~7 million facility-days, but only ~2 million facility-months, and the month's last
day is all the 30-day windows of measures.py need.

Every fact belongs to one file (a bundle's day falls back to its own file's), so the facts of disjoint sets of files
combine by union, minimum and sum: the report takes what pipelines/reports/adoption/stored.py keeps for the files
up to its read position and computes the files after it (`compute_file_facts` over a `FileRange`).

The report reads staging (the append-only history of what passed validation) because core keeps only the newest
version of a resource: "has ever sent" and "first sent on" need the history. Only aggregates per institution
leave this module; no patient key does.
"""

from dataclasses import dataclass
from datetime import timedelta

import duckdb

from pipelines.fhir.systems import INFORMATION_KINDS
from pipelines.ingest.facility_registry import BED_BAND_SQL
from pipelines.reports.jst import jst_day_sql, jst_midnight_sql

#: inbox kinds that are not a facility's own submissions (their records are not in the quality measure)
NOT_SUBMISSIONS = ("consent", "access", "facilities")
PASSED = ("loaded", "duplicate", "tombstoned")
#: bundle timestamp → file name → landing, as one SQL expression over raw.bundle b / ops.file_manifest m
_FILE_NAME_DAY = r"try_strptime(regexp_extract(m.path, '_(\d{8})_', 1), '%Y%m%d')::DATE"


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    # names are this module's constants, so plain literals (a parameter would make DuckDB import pandas)
    return bool(con.execute("SELECT count(*) FROM information_schema.tables "
                            f"WHERE table_schema = '{schema}' AND table_name = '{table}'").fetchone()[0])


def _category_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Staging tables holding dated, attributed kinds of information (new ones, e.g. checkups, join by shape)."""
    needed = ["institution_number", "category", "file_id", "bundle_key", "raw_id"]
    rows = con.execute(  # literals, not parameters: those make DuckDB import pandas
        "SELECT table_name FROM duckdb_columns() WHERE schema_name = 'staging' AND column_name IN "
        f"({', '.join(repr(c) for c in needed)}) GROUP BY table_name HAVING count(*) = {len(needed)} "
        "ORDER BY table_name").fetchall()
    return [r[0] for r in rows]


@dataclass(frozen=True)
class FileRange:
    """The files whose file_id is above `after` and, when `through` is set, at most `through`."""
    after: int = 0
    through: int | None = None

    def sql(self, alias: str = "") -> str:
        """SQL predicate on `{alias}.file_id` (bounds, not a join, so DuckDB skips row groups outside them)."""
        column = f"{alias}.file_id" if alias else "file_id"
        upper = "" if self.through is None else f" AND {column} <= {int(self.through)}"
        return f"{column} > {int(self.after)}{upper}"


EVERY_FILE = FileRange()


def build_facility(con: duckdb.DuckDBPyConnection) -> None:
    """TEMP adoption_facility: every registered facility with its segment (read-only connections may hold TEMP
    tables). The other facts come from stored.build_facts; the views' table waits for the as-of date
    (build_view_months)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE adoption_facility AS
        SELECT institution_number, facility_name, prefecture_code, facility_type, bed_count,
               coalesce(bed_band, {BED_BAND_SQL}) AS bed_band,
               CASE WHEN facility_type <> 'hospital' THEN facility_type
                    ELSE CASE coalesce(bed_band, {BED_BAND_SQL}) WHEN '<200' THEN 'hospital_under200'
                         WHEN '200-399' THEN 'hospital_200_399' WHEN '400+' THEN 'hospital_400plus'
                         ELSE 'hospital_beds_unknown' END END AS segment,
               applied_on, connected_on, first_submission_on AS registry_first_submission_on,
               first_view_on AS registry_first_view_on
        FROM core.facility
    """)


def compute_file_facts(con: duckdb.DuckDBPyConnection, files: FileRange, into: str) -> None:
    """TEMP tables {into}_submission_day, {into}_category_first and {into}_records_day over `files` alone."""
    # each bundle's own date, read once (a JSON field of 2 million envelopes is the costly part)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE adoption_bundle_stamp AS
        SELECT bundle_key, file_id, try_cast(left(envelope->>'$.timestamp', 10) AS DATE) AS stamp FROM raw.bundle
        WHERE {files.sql()}
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE adoption_file_day AS
        SELECT m.file_id, m.kind, m.sender, coalesce({_FILE_NAME_DAY}, s.stamp, m.landed_at::DATE) AS day
        FROM ops.file_manifest m
        LEFT JOIN (SELECT file_id, min(stamp) AS stamp FROM adoption_bundle_stamp GROUP BY file_id) s USING (file_id)
        WHERE {files.sql("m")}
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE adoption_bundle_day AS
        SELECT b.bundle_key, b.file_id, coalesce(b.stamp, f.day) AS day
        FROM adoption_bundle_stamp b JOIN adoption_file_day f USING (file_id)
    """)
    _submission_days(con, files, f"{into}_submission_day")
    _category_first(con, files, f"{into}_category_first")
    _records_days(con, files, f"{into}_records_day")


def _submission_days(con: duckdb.DuckDBPyConnection, files: FileRange, into: str) -> None:
    if _exists(con, "staging", "bundle"):
        source = f"""SELECT DISTINCT s.institution_number, d.day
                     FROM staging.bundle s JOIN adoption_bundle_day d USING (bundle_key)
                     WHERE {files.sql("s")} AND s.accepted AND s.institution_number IS NOT NULL AND d.day IS NOT NULL"""
    else:
        source = "SELECT NULL::VARCHAR AS institution_number, NULL::DATE AS day WHERE false"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {into} AS {source}")


def build_view_months(con: duckdb.DuckDBPyConnection, as_of) -> None:
    """adoption_view_month: institution × JST calendar month (month_index = year × 12 + month − 1) — the first and
    last day it viewed a record, counting views up to the as-of day only. A failed attempt (AuditEvent.outcome
    other than 0) is not a view."""
    day = jst_day_sql("recorded")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE adoption_view_month AS
        SELECT institution_number, year(day) * 12 + month(day) - 1 AS month_index, min(day) AS first_day,
               max(day) AS last_day
        FROM (SELECT viewer AS institution_number, {day} AS day FROM core.access_event
              WHERE coalesce(outcome, '0') = '0' AND recorded < {jst_midnight_sql(as_of + timedelta(days=1))})
        GROUP BY ALL
    """)


def view_span(con: duckdb.DuckDBPyConnection) -> tuple:
    """(first, last) JST day with a successful view, (None, None) without one."""
    return con.execute(f"""
        SELECT {jst_day_sql("min(recorded)")}, {jst_day_sql("max(recorded)")}
        FROM core.access_event WHERE coalesce(outcome, '0') = '0'
    """).fetchone()


def _category_first(con: duckdb.DuckDBPyConnection, files: FileRange, into: str) -> None:
    kinds = ", ".join(f"'{k}'" for k in INFORMATION_KINDS)
    parts = [f"SELECT institution_number, category, bundle_key, file_id, raw_id FROM staging.{t} WHERE {files.sql()}"
             for t in _category_tables(con)]
    rows = " UNION ALL ".join(parts) or (
        "SELECT NULL::VARCHAR institution_number, NULL::VARCHAR category, NULL::BIGINT bundle_key, "
        "NULL::BIGINT file_id, NULL::BIGINT raw_id WHERE false")
    # staging holds what passed the IG rules; a record the contract rejected afterwards is in ops.quarantine
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {into} AS
        SELECT r.institution_number, r.category, min(coalesce(b.day, f.day)) AS first_day
        FROM ({rows}) r
        LEFT JOIN adoption_bundle_day b USING (bundle_key)
        LEFT JOIN adoption_file_day f ON f.file_id = r.file_id
        WHERE r.category IN ({kinds}) AND r.institution_number IS NOT NULL
          AND r.raw_id NOT IN (SELECT raw_id FROM ops.record_outcome WHERE outcome = 'quarantined')
        GROUP BY ALL
    """)


def _records_days(con: duckdb.DuckDBPyConnection, files: FileRange, into: str) -> None:
    """Records per sender and day: every parsed record of its files, plus units that could not be parsed.
    A record passed when it ended loaded, duplicate (an older or repeated version, e.g. the Patient entry
    every bundle repeats) or tombstoned; it failed when it ended in ops.quarantine."""
    not_submissions = ", ".join(f"'{k}'" for k in NOT_SUBMISSIONS)
    passed = ", ".join(f"'{k}'" for k in PASSED)
    # the bundle's declared institution where the file name carries none (bundle_key is staging.bundle's key)
    declared = ("LEFT JOIN staging.bundle s ON s.bundle_key = u.bundle_key" if _exists(con, "staging", "bundle")
                else "LEFT JOIN (SELECT NULL::BIGINT AS bundle_key, NULL::VARCHAR AS institution_number) s ON false")
    # The records that did not pass, rather than every record's outcome: a few percent of the rows. A record has
    # no outcome yet only in a file no run has finished (ops.file_manifest.reported_batch_id): those files are
    # searched for them, and only when there are any (DuckDB ran the anti join over every record first: 1.4 s).
    con.execute(f"CREATE OR REPLACE TEMP TABLE adoption_not_passed AS "
                f"SELECT raw_id FROM ops.record_outcome WHERE outcome NOT IN ({passed})")
    con.execute("CREATE OR REPLACE TEMP TABLE adoption_unfinished_file AS "
                f"SELECT file_id FROM ops.file_manifest WHERE reported_batch_id IS NULL AND {files.sql()}")
    if con.execute("SELECT count(*) FROM adoption_unfinished_file").fetchone()[0]:
        con.execute("""INSERT INTO adoption_not_passed
                       SELECT r.raw_id FROM raw.resource r SEMI JOIN adoption_unfinished_file USING (file_id)
                       ANTI JOIN ops.record_outcome o USING (raw_id)""")
    # Counted per unit, then dated: a bundle's records are its entries (raw.bundle.entry_count: the raw step
    # writes one raw row per entry), records outside bundles are counted per file, and only the few that did not
    # pass are looked up in raw.resource. Joining every raw record to its file and bundle day instead took
    # 1.2–1.5 s at national scale (14.5 M raw records in 1.9 M bundles), this 0.9–1.1 s: what is left is the
    # dating and grouping of 1.9 M bundles. tests/ingest/test_generated_faults.py holds the raw step to it.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {into} AS
        WITH submission_file AS (
            SELECT file_id, sender, day FROM adoption_file_day WHERE kind NOT IN ({not_submissions})
        ), not_passed AS (
            SELECT r.file_id, r.bundle_key, count(*) AS records
            FROM raw.resource r SEMI JOIN adoption_not_passed USING (raw_id)
            WHERE {files.sql("r")}
            GROUP BY ALL
        )
        SELECT institution_number, day, sum(received)::BIGINT AS received, sum(passed)::BIGINT AS passed
        FROM (
            SELECT coalesce(f.sender, s.institution_number) AS institution_number, coalesce(b.day, f.day) AS day,
                   u.entry_count AS received, u.entry_count - coalesce(x.records, 0) AS passed
            FROM raw.bundle u JOIN submission_file f USING (file_id)
            LEFT JOIN adoption_bundle_day b ON b.bundle_key = u.bundle_key
            LEFT JOIN (SELECT bundle_key, records FROM not_passed WHERE bundle_key IS NOT NULL) x
                ON x.bundle_key = u.bundle_key
            {declared}
            WHERE {files.sql("u")}
            UNION ALL
            SELECT f.sender, f.day, u.received, u.received - coalesce(x.records, 0)
            FROM (SELECT file_id, count(*) AS received FROM raw.resource
                  WHERE bundle_key IS NULL AND {files.sql()} GROUP BY file_id) u
            JOIN submission_file f USING (file_id)
            LEFT JOIN (SELECT file_id, records FROM not_passed WHERE bundle_key IS NULL) x USING (file_id)
            UNION ALL
            SELECT coalesce(q.institution_number, f.sender), f.day, q.record_count, 0
            FROM ops.quarantine q JOIN submission_file f USING (file_id)
            WHERE q.scope IN ('file', 'line')
        )
        WHERE institution_number IS NOT NULL
        GROUP BY ALL
    """)


def data_span(con: duckdb.DuckDBPyConnection) -> tuple:
    """(first, last) day any fact speaks of — the series start and the default as-of date; (None, None) when
    the warehouse holds no dated fact yet."""
    views = [f"DATE '{d.isoformat()}'" if d else "NULL::DATE" for d in view_span(con)]
    return con.execute(f"""
        SELECT min(d), max(d) FROM (
            SELECT applied_on AS d FROM adoption_facility UNION ALL SELECT connected_on FROM adoption_facility
            UNION ALL SELECT day FROM adoption_submission_day UNION ALL SELECT {views[0]} UNION ALL SELECT {views[1]})
    """).fetchone()


def unregistered_senders(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(institutions, records) that sent data but are not in the registry: outside every measure, said so."""
    return con.execute("""
        SELECT count(DISTINCT institution_number), coalesce(sum(received), 0)::BIGINT FROM adoption_records_day
        WHERE institution_number NOT IN (SELECT institution_number FROM adoption_facility)
    """).fetchone()
