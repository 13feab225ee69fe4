"""The audit report: who saw what, and was it allowed.

Two audiences, kept in separate files so the restricted one is never forwarded by accident:

  analysts            audit.html, audit_summary.csv, audit_summary.xlsx — findings by month × prefecture ×
                      facility type × rule. Small-cell rule: a cell with fewer than 10 distinct patients shows
                      "<10" for every count and is left out of every total and chart (totals are sums of the
                      shown cells only, so no suppressed count can be recovered by subtraction).
  security officer    audit_cases.html, audit_cases.csv, audit_cases.xlsx — one row per finding with the
                      pseudonymous patient key, facility, staff member, evidence and explanation.

Reads TEMP audit_finding (pipelines/audit/findings.py) and the hash-chain verdict of the access log.
"""

from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from pipelines.audit import aggregates
from pipelines.audit.chain import ChainVerdict, verify_chain
from pipelines.audit.findings import compute_findings
from pipelines.audit.rules import RULES
from pipelines.audit.window import AuditWindow, resolve_window
from pipelines.config import REFERENCE_DIR
from pipelines.reports.adoption import provenance
from pipelines.reports.xlsx import write_xlsx
from pipelines.warehouse import sibling_cursor

SMALL_CELL = 10  # counts of people below this are suppressed in analyst outputs
SUPPRESSED = "<10"
CUBE_KEYS = ["month", "prefecture_code", "prefecture_name", "facility_type", "rule_id"]


@dataclass(frozen=True)
class AuditReport:
    window: AuditWindow
    verdict: ChainVerdict
    accesses: int
    cube: pl.DataFrame  # suppressed analyst cube
    cases: pl.DataFrame  # security officer's case list
    footer: dict


def summary_cube(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """grain: month (JST) × prefecture × facility type × rule; findings, accesses and distinct patients,
    suppressed (null + `suppressed`) when fewer than SMALL_CELL distinct patients."""
    prefectures = (REFERENCE_DIR / "prefectures.csv").as_posix()
    return con.sql(f"""
        SELECT strftime(f.day_jst, '%Y-%m') AS month, coalesce(fac.prefecture_code, '--') AS prefecture_code,
               coalesce(p.prefecture_name_ja || ' ' || p.prefecture_name_en, '(registry unknown)') AS prefecture_name,
               coalesce(fac.facility_type, 'unknown') AS facility_type, f.rule_id,
               count(DISTINCT f.patient_key) < {SMALL_CELL} AS suppressed,
               CASE WHEN NOT suppressed THEN count(*) END AS findings,
               CASE WHEN NOT suppressed THEN count(DISTINCT f.access_id) END AS accesses,
               CASE WHEN NOT suppressed THEN count(DISTINCT f.patient_key) END AS patients
        FROM audit_finding f
        LEFT JOIN core.facility fac ON fac.institution_number = f.viewer
        LEFT JOIN read_csv('{prefectures}', all_varchar = true) p ON p.prefecture_code = fac.prefecture_code
        GROUP BY ALL ORDER BY ALL""").pl()


def case_list(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """grain: one row per finding (access × rule), heaviest first; patient keys are pseudonyms."""
    frame = con.sql("""
        SELECT f.rule_id, f.weight, strftime(timezone('Asia/Tokyo', f.recorded), '%Y-%m-%d %H:%M:%S') AS recorded_jst,
               f.access_id, f.patient_key, f.viewer, fac.facility_name, fac.prefecture_code, fac.facility_type,
               f.staff_id, f.staff_role, f.purpose, array_to_string(f.kinds, ',') AS kinds, f.explanation,
               CAST(f.evidence AS VARCHAR) AS evidence
        FROM audit_finding f LEFT JOIN core.facility fac ON fac.institution_number = f.viewer
        ORDER BY f.weight DESC, f.rule_id, f.recorded, f.access_id""").pl()
    titles = pl.DataFrame({"rule_id": list(RULES), "rule_title": [f"{r.title_ja} {r.title_en}" for r in RULES.values()]})
    return frame.join(titles, on="rule_id", how="left").select(
        "rule_id", "rule_title", *[c for c in frame.columns if c != "rule_id"])


def build_report(con: duckdb.DuckDBPyConnection, window: AuditWindow) -> AuditReport:
    """Findings over `window` (TEMP audit_finding), the chain verdict and both audiences' tables.

    The chain is verified on a second connection in a second thread while the findings are computed: its
    hashing is Python (hashlib) and the findings are DuckDB, which releases the GIL, so the two overlap. The
    verification is incremental (rows after the newest checkpoint; docs/audit.md) and the report says so."""
    with closing(sibling_cursor(con)) as chain_con, ThreadPoolExecutor(max_workers=1) as pool:
        checking = pool.submit(verify_chain, chain_con)
        compute_findings(con, window)
        verdict = checking.result()
    accesses = con.execute("SELECT count(*) FROM audit_access").fetchone()[0]
    footer = {"as_of": window.as_of.isoformat(), "window": window.label(), "code_version": provenance.code_version(),
              "generated_at": provenance.generated_at(), **provenance.warehouse_snapshot(con),
              "access_log": verdict.message(),  # ends with which verification it was
              "audit_aggregates": aggregates.describe(con, aggregates.stored_state(con))}
    return AuditReport(window, verdict, accesses, summary_cube(con), case_list(con), footer)


def _shown(cube: pl.DataFrame) -> pl.DataFrame:
    return cube.filter(~pl.col("suppressed"))


def cube_for_export(cube: pl.DataFrame) -> pl.DataFrame:
    """Counts as text, suppressed cells as "<10" (what analysts receive)."""
    titles = {k: f"{r.title_ja} {r.title_en}" for k, r in RULES.items()}
    return cube.with_columns(
        rule_title=pl.col("rule_id").replace_strict(titles, default=None),
        **{c: pl.when(pl.col("suppressed")).then(pl.lit(SUPPRESSED)).otherwise(pl.col(c).cast(pl.String))
           for c in ("findings", "accesses", "patients")},
    ).select(*CUBE_KEYS, "rule_title", "findings", "accesses", "patients", "suppressed")


def margin(cube: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Findings per `by` as sums of the shown cells only (suppressed cells counted, never added)."""
    return cube.group_by(by).agg(
        pl.col("findings").filter(~pl.col("suppressed")).sum().alias("findings_shown"),
        pl.col("suppressed").sum().alias("cells_suppressed"),
    ).sort(by)


def write_audit_report(con: duckdb.DuckDBPyConnection, out_dir: Path, as_of=None, date_from=None,
                       date_to=None) -> list[Path]:
    """Write both audiences' files under out_dir; returns their paths (analysts' first, then the officer's)."""
    from pipelines.reports import audit_html

    out_dir.mkdir(parents=True, exist_ok=True)
    report = build_report(con, resolve_window(con, as_of, date_from, date_to))
    summary = cube_for_export(report.cube)
    about = pl.DataFrame({"item": list(report.footer), "value": [str(v) for v in report.footer.values()]})
    analyst = [out_dir / "audit_summary.csv", out_dir / "audit.html"]
    officer = [out_dir / "audit_cases.csv", out_dir / "audit_cases.html"]
    # The case list's workbook and CSV (hundreds of thousands of rows at national scale) are written in threads
    # while the pages are rendered: polars and zlib release the GIL, so the files overlap on two cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        cases_xlsx = pool.submit(_write_xlsx, out_dir / "audit_cases.xlsx", {"cases": report.cases, "about": about})
        cases_csv = pool.submit(report.cases.write_csv, officer[0])
        summary.write_csv(analyst[0])
        analyst[1].write_text(audit_html.analyst_page(report, summary), encoding="utf-8")
        officer[1].write_text(audit_html.cases_page(report), encoding="utf-8")
        analyst += _write_xlsx(out_dir / "audit_summary.xlsx", {"summary": summary, "about": about})
        cases_csv.result()
        officer += cases_xlsx.result()
    return analyst + officer


def _write_xlsx(path: Path, sheets: dict[str, pl.DataFrame]) -> list[Path]:
    """One sheet per frame, headed by its column names (pipelines/reports/xlsx.py: built column-wise, so the case
    list of a national audit — hundreds of thousands of findings — takes seconds, not minutes)."""
    # an empty text is a blank cell, as spreadsheet writers (and this report's earlier workbooks) make it
    blank = [(sheet, frame.with_columns(pl.col(pl.String).replace("", None)), frame.columns)
             for sheet, frame in sheets.items()]
    return [write_xlsx(path, blank)]
