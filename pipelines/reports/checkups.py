"""特定健診 report: participation and results by prefecture, sex and 5-year age band for one fiscal year.

    build_checkup_report(con, as_of, fiscal_year=None) -> CheckupReport    every table (pure, DuckDB reads only)
    write_checkup_report(report, out_dir) -> [paths]                        HTML + CSV + XLSX (checkups_output.py)

Reads core.checkup_result (the common checkup rows with patient_key) and core.patient. Definitions, stated in
the report itself too:

- Year: the fiscal year (April–March) holding `as_of`, unless given; checkups dated after `as_of` are ignored.
- Who: 特定健診 (program 010) examinees aged 40–74 on 31 March at the end of the year (年度末年齢, as the
  programme counts eligibility), one checkup per person — the latest of the year.
- Sex, age: core.patient (gender, birth year and month — enough for the 年度末年齢, and all the warehouse keeps);
  the checkup rows' own sex / birth_date fill in for a person without a patient row, when the table has them.
- Where: the prefecture of the person's address in core.patient; for a person the warehouse has no address
  for, the prefecture of the examining institution (健診機関番号 digits 1–2).
- メタボ該当 / 予備群: the checkup's メタボリックシンドローム判定 (1 基準該当 / 2 予備群該当) among those judged
  1–3 (4 判定不能 and no judgement are left out of the denominator).
- HbA1c ≥ 6.5 %: among those with an HbA1c (NGSP) value.
- 血圧 ≥ 140/90: systolic ≥ 140 or diastolic ≥ 90 mmHg, each the mean of the 1st and 2nd readings when both
  exist (the one reading otherwise, その他 when neither), among those with a blood pressure.
- Participation: examinees over insured persons aged 40–74 whom the warehouse knows (core.patient) — a
  reference figure: the warehouse's population is people with shared records, not an insurer's roster.
- Small cells: any count of people below 10 is suppressed (null; "<10" on the page), and so is every rate
  computed from it.
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import duckdb
import polars as pl

from pipelines.config import REFERENCE_DIR
from pipelines.reports.adoption.provenance import code_version

SMALL_CELL = 10
HBA1C_CODES = ("3D046000001906202", "3D046000001920402", "3D046000001927102", "3D046000001999902")
METABO_CODE = "9N501000000000011"
SYSTOLIC = {"first": "9A751000000000001", "second": "9A752000000000001", "other": "9A755000000000001"}
DIASTOLIC = {"first": "9A761000000000001", "second": "9A762000000000001", "other": "9A765000000000001"}
HBA1C_HIGH, SBP_HIGH, DBP_HIGH = 6.5, 140, 90
#: measure → (numerator column, denominator column)
RATES = {
    "metabo_rate": ("metabo_positive", "metabo_judged"),
    "metabo_reserve_rate": ("metabo_reserve", "metabo_judged"),
    "hba1c_high_rate": ("hba1c_high", "hba1c_measured"),
    "bp_high_rate": ("bp_high", "bp_measured"),
}
RESULT_COUNTS = ["examinees", "metabo_judged", "metabo_positive", "metabo_reserve", "hba1c_measured", "hba1c_high",
                 "bp_measured", "bp_high"]
ALL = "all"  # sex / age band of a total row; prefecture 00 = 全国


class CheckupReportError(RuntimeError):
    """The warehouse cannot give this report (no checkup table yet)."""


@dataclass
class CheckupReport:
    as_of: date
    fiscal_year: int
    results: pl.DataFrame  # prefecture × sex × age band (+ totals): counts and rates, suppressed
    participation: pl.DataFrame  # prefecture × sex × age band (+ totals): eligible, examinees, rate, suppressed
    inputs: dict = field(default_factory=dict)


def fiscal_year_of(day: date) -> int:
    return day.year if day.month >= 4 else day.year - 1


def today_in_japan() -> date:
    return (datetime.now(UTC) + timedelta(hours=9)).date()


def _window(fiscal_year: int, as_of: date) -> tuple[date, date]:
    return date(fiscal_year, 4, 1), min(date(fiscal_year + 1, 3, 31), as_of)


def _in_list(codes) -> str:
    return ", ".join(f"'{c}'" for c in codes)


def _age_band(age: str) -> str:
    low = f"CAST(floor({age} / 5) * 5 AS INTEGER)"
    return f"{low}::VARCHAR || '-' || ({low} + 4)::VARCHAR"


def _reading(codes: dict[str, str]) -> str:
    both = f"avg(r.value_number) FILTER (WHERE r.item_code IN ('{codes['first']}', '{codes['second']}'))"
    return f"coalesce({both}, max(r.value_number) FILTER (WHERE r.item_code = '{codes['other']}'))"


def checkup_columns(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {name for (name,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'core' "
        "AND table_name = 'checkup_result'").fetchall()}


def examinees_sql(fiscal_year: int, as_of: date, columns: set[str]) -> str:
    """One row per 特定健診 examinee of the year: prefecture_code, sex, age, age_band and the measures.

    Sex and birth year/month come from core.patient (the warehouse keeps no exact birth date); when the checkup
    rows carry the person's own sex / birth_date (the common row shape does), they fill a missing patient row."""
    start, end = _window(fiscal_year, as_of)
    own = [c for c in ("sex", "birth_date") if c in columns]
    sex = "coalesce(p.gender, c.sex)" if "sex" in own else "p.gender"
    birth = "TRY_CAST(c.birth_date AS DATE)"
    year = f"coalesce(p.birth_year, year({birth}))" if "birth_date" in own else "p.birth_year"
    month = f"coalesce(p.birth_month, month({birth}))" if "birth_date" in own else "p.birth_month"
    live = "AND NOT is_tombstoned" if "is_tombstoned" in columns else ""
    return f"""
        WITH rows AS (
            SELECT * FROM core.checkup_result
            WHERE program = '010' AND TRY_CAST(checkup_date AS DATE) BETWEEN DATE '{start}' AND DATE '{end}' {live}
        ),
        latest AS (  -- one checkup per person: the latest of the year
            SELECT DISTINCT patient_key, institution_number, document_id, checkup_date{''.join(', ' + c for c in own)}
            FROM rows
            QUALIFY row_number() OVER (PARTITION BY patient_key
                                       ORDER BY checkup_date DESC, institution_number DESC, document_id DESC) = 1
        ),
        people AS (
            SELECT c.patient_key, {sex} AS sex,
                   ({fiscal_year + 1} - {year} - CASE WHEN {month} > 3 THEN 1 ELSE 0 END) AS age,
                   coalesce(p.prefecture_code, substr(c.institution_number, 1, 2)) AS prefecture_code,
                   max(r.value_code) FILTER (WHERE r.item_code = '{METABO_CODE}') AS metabo,
                   max(r.value_number) FILTER (WHERE r.item_code IN ({_in_list(HBA1C_CODES)})) AS hba1c,
                   {_reading(SYSTOLIC)} AS systolic,
                   {_reading(DIASTOLIC)} AS diastolic
            FROM latest c
            JOIN rows r USING (patient_key, institution_number, document_id)
            LEFT JOIN core.patient p USING (patient_key)
            GROUP BY ALL
        )
        SELECT *, {_age_band('age')} AS age_band FROM people
    """


_GROUPING = """
    CASE WHEN grouping(prefecture_code) = 1 THEN '00' ELSE prefecture_code END AS prefecture_code,
    CASE WHEN grouping(sex) = 1 THEN 'all' ELSE sex END AS sex,
    CASE WHEN grouping(age_band) = 1 THEN 'all' ELSE age_band END AS age_band,
"""
_SETS = "GROUPING SETS ((prefecture_code, sex, age_band), (prefecture_code, sex), (prefecture_code), " \
        "(sex, age_band), (sex), ())"


def result_counts(con: duckdb.DuckDBPyConnection, fiscal_year: int, as_of: date) -> pl.DataFrame:
    """Unsuppressed counts and rates of the results, per prefecture × sex × age band and every total."""
    frame = con.sql(f"""
        SELECT {_GROUPING}
               count(*) AS examinees,
               count(*) FILTER (WHERE metabo IN ('1', '2', '3')) AS metabo_judged,
               count(*) FILTER (WHERE metabo = '1') AS metabo_positive,
               count(*) FILTER (WHERE metabo = '2') AS metabo_reserve,
               count(hba1c) AS hba1c_measured,
               count(*) FILTER (WHERE hba1c >= {HBA1C_HIGH}) AS hba1c_high,
               count(*) FILTER (WHERE systolic IS NOT NULL OR diastolic IS NOT NULL) AS bp_measured,
               count(*) FILTER (WHERE systolic >= {SBP_HIGH} OR diastolic >= {DBP_HIGH}) AS bp_high
        FROM ({examinees_sql(fiscal_year, as_of, checkup_columns(con))}) WHERE age BETWEEN 40 AND 74
        GROUP BY {_SETS}
        ORDER BY prefecture_code, sex, age_band
    """).pl()
    return frame.with_columns(pl.col(RESULT_COUNTS).cast(pl.Int64)).with_columns(
        (pl.col(num) / pl.when(pl.col(den) > 0).then(pl.col(den))).alias(rate) for rate, (num, den) in RATES.items())


def participation_counts(con: duckdb.DuckDBPyConnection, fiscal_year: int, as_of: date) -> pl.DataFrame:
    """Unsuppressed: insured persons aged 40–74 the warehouse knows, how many had a 特定健診, and the rate."""
    age = f"({fiscal_year + 1} - birth_year - CASE WHEN birth_month > 3 THEN 1 ELSE 0 END)"
    frame = con.sql(f"""
        WITH examined AS (SELECT DISTINCT patient_key FROM ({examinees_sql(fiscal_year, as_of, checkup_columns(con))})),
        eligible AS (
            SELECT patient_key, gender AS sex, prefecture_code, {_age_band(age)} AS age_band
            FROM core.patient WHERE {age} BETWEEN 40 AND 74 AND prefecture_code IS NOT NULL
        )
        SELECT {_GROUPING}
               count(*) AS eligible, count(x.patient_key) AS examinees
        FROM eligible e LEFT JOIN examined x USING (patient_key) GROUP BY {_SETS}
        ORDER BY prefecture_code, sex, age_band
    """).pl()
    return frame.with_columns(pl.col("eligible", "examinees").cast(pl.Int64)).with_columns(
        participation_rate=pl.col("examinees") / pl.when(pl.col("eligible") > 0).then(pl.col("eligible")))


def suppress(frame: pl.DataFrame, counts: list[str], rates: dict[str, tuple[str, str]]) -> pl.DataFrame:
    """Null every count of people below SMALL_CELL and every rate computed from one; `suppressed` says where."""
    small = {c: pl.col(c).is_between(0, SMALL_CELL - 1, closed="both") for c in counts}
    return frame.with_columns(
        *[pl.when(~small[num] & ~small[den]).then(pl.col(rate)).alias(rate) for rate, (num, den) in rates.items()],
        *[pl.when(~small[c]).then(pl.col(c)).alias(c) for c in counts],
        suppressed=pl.any_horizontal(*small.values()),
    )


def _prefecture_names() -> pl.DataFrame:
    names = pl.read_csv(REFERENCE_DIR / "prefectures.csv", infer_schema_length=0)
    return pl.concat([pl.DataFrame({"prefecture_code": ["00"], "prefecture_name_ja": ["全国"],
                                    "prefecture_name_en": ["Japan"]}), names])


def _named(frame: pl.DataFrame) -> pl.DataFrame:
    frame = frame.join(_prefecture_names(), on="prefecture_code", how="left")
    first = ["prefecture_code", "prefecture_name_ja", "prefecture_name_en"]
    return frame.select(first + [c for c in frame.columns if c not in first])


def _snapshot(con: duckdb.DuckDBPyConnection) -> dict:
    """What the warehouse held: the last finished ingest run, and the checkup rows read."""
    info: dict = {}
    try:
        batch, finished = con.execute(
            "SELECT max(batch_id), max(finished_at) FROM ops.batch WHERE finished_at IS NOT NULL").fetchone()
        info |= {"last_batch_id": batch, "last_batch_finished_at": str(finished) if finished else None}
    except duckdb.Error:
        info |= {"last_batch_id": None, "last_batch_finished_at": None}
    info["checkup_rows"] = con.execute("SELECT count(*) FROM core.checkup_result").fetchone()[0]
    return info


def _unplaced(con: duckdb.DuckDBPyConnection, fiscal_year: int, as_of: date) -> int:
    """特定健診 examinees of the year whose age is unknown (no core.patient row, no birth date on the rows)."""
    return con.execute(f"SELECT count(*) FROM ({examinees_sql(fiscal_year, as_of, checkup_columns(con))}) "
                       "WHERE age IS NULL").fetchone()[0]


def build_checkup_report(con: duckdb.DuckDBPyConnection, as_of: date | None = None,
                         fiscal_year: int | None = None) -> CheckupReport:
    as_of = as_of or today_in_japan()
    fiscal_year = fiscal_year if fiscal_year is not None else fiscal_year_of(as_of)
    try:
        con.execute("SELECT 1 FROM core.checkup_result LIMIT 0")
    except duckdb.CatalogException:
        raise CheckupReportError("the warehouse has no core.checkup_result yet: ingest checkup files first") from None
    results = suppress(result_counts(con, fiscal_year, as_of), RESULT_COUNTS, RATES)
    participation = suppress(participation_counts(con, fiscal_year, as_of), ["eligible", "examinees"],
                             {"participation_rate": ("examinees", "eligible")})
    start, end = _window(fiscal_year, as_of)
    inputs = {"as_of": as_of.isoformat(), "fiscal_year": fiscal_year, "window": f"{start} – {end}",
              "small_cell_threshold": SMALL_CELL, "code_version": code_version(),
              "examinees_without_age": _unplaced(con, fiscal_year, as_of),
              "generated_at": datetime.now(UTC).isoformat(timespec="seconds"), **_snapshot(con)}
    return CheckupReport(as_of, fiscal_year, _named(results), _named(participation), inputs)


def write_checkup_report(report: CheckupReport, out_dir):
    from pipelines.reports.checkups_output import write_outputs

    return write_outputs(report, out_dir)
