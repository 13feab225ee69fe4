"""Assemble the adoption report: every table it outputs, computed on one connection for one as-of date."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from pipelines.reports.adoption import facts, measures, provenance, reference, stored, survey, trajectory
from pipelines.reports.adoption.denominators import reference_rates
from pipelines.reports.adoption.labels import SEGMENT_JA, SEGMENTS
from pipelines.reports.adoption.reference import Target

#: table name → (XLSX sheet name, one-line description); also the DuckDB table names in schema `reports`
TABLES = {
    "adoption_monthly": ("月次指標", "month × prefecture × segment × measure: numerator, denominator, rate"),
    "adoption_trajectory": ("全国の見通し", "national, per segment: pace, projected date, status"),
    "adoption_prefecture_gap": ("都道府県別ギャップ", "prefecture: gap to the target, pace, rank by gap"),
    "adoption_facility": ("医療機関別", "registered facility on the as-of date"),
    "adoption_reference_rates": ("全国統計との比較", "registry and connections against 医療施設調査 counts"),
    "ehr_survey_rates": ("電子カルテ調査", "EHR adoption survey 2008–2023: published and recomputed rates"),
    "ehr_survey_projection": ("電子カルテ予測", "EHR adoption trend to the target date"),
    "adoption_inputs": ("入力と出典", "as-of date, target, warehouse snapshot, reference files, code version"),
}


def today_in_japan() -> date:
    return (datetime.now(UTC) + timedelta(hours=9)).date()


@dataclass
class AdoptionReport:
    as_of: date
    target: Target
    tables: dict[str, pl.DataFrame]
    cells: pl.DataFrame  # the monthly counts behind adoption_monthly (charts read them)
    survey_frame: pl.DataFrame
    inputs: dict = field(default_factory=dict)


def _with_prefecture_names(frame: pl.DataFrame, prefectures: pl.DataFrame) -> pl.DataFrame:
    names = pl.concat([pl.DataFrame({"prefecture_code": ["00"], "prefecture_name_ja": ["全国"],
                                     "prefecture_name_en": ["Japan"]}), prefectures])
    frame = frame.join(names, on="prefecture_code", how="left")
    first = frame.columns.index("prefecture_code") + 1
    order = frame.columns[:first] + ["prefecture_name_ja", "prefecture_name_en"] + [
        c for c in frame.columns[first:] if c not in ("prefecture_name_ja", "prefecture_name_en")]
    return frame.select(order)


def _trajectory_rows(cells: pl.DataFrame, scopes: list[tuple[str, str]], target: Target, as_of: date) -> pl.DataFrame:
    rows = []
    for prefecture, segment in scopes:
        series = cells.filter(pl.col("prefecture_code") == prefecture, pl.col("segment") == segment)
        row = {"prefecture_code": prefecture, "segment": segment, "segment_ja": SEGMENT_JA.get(segment, segment)}
        if series.is_empty() or series["registered"][-1] == 0:
            row |= {"registered": 0, "connected": 0, "target_level_pct": target.level * 100,
                    "target_date": target.by, "status": "no registered facilities"}
        else:
            row |= trajectory.series_trajectory(series, target, as_of)
        rows.append(row)
    return pl.DataFrame(rows, schema=trajectory.SCHEMA)


def _prefecture_gap(cells: pl.DataFrame, prefectures: pl.DataFrame, target: Target, as_of: date) -> pl.DataFrame:
    frame = _trajectory_rows(cells, [(code, "all") for code in prefectures["prefecture_code"]], target, as_of)
    # Largest gap first; a prefecture with no registered facility cannot be ranked.
    ranked = frame.filter(pl.col("gap_pp").is_not_null()).sort(
        ["gap_pp", "facilities_short", "prefecture_code"], descending=[True, True, False]).with_row_index(
        "rank_by_gap", offset=1)
    rest = frame.filter(pl.col("gap_pp").is_null())
    return pl.concat([ranked.with_columns(pl.col("rank_by_gap").cast(pl.Int64)), rest], how="diagonal_relaxed")


def _inputs(con: duckdb.DuckDBPyConnection, as_of: date, as_of_basis: str, target: Target,
            warehouse: str, facts_state: stored.FactsState) -> dict:
    snapshot = provenance.warehouse_snapshot(con)
    senders, records = facts.unregistered_senders(con)
    return {
        "as_of": as_of.isoformat(), "as_of_basis": as_of_basis,
        "target": f"{target.level:.0%} of registered facilities connected by {target.by.isoformat()}",
        "target_source": target.source, "target_note": target.note,
        "warehouse": warehouse, **snapshot,
        "reference_files": ", ".join(f"data/reference/{name}" for name in reference.FILES),
        "code_version": provenance.code_version(), "generated_at": provenance.generated_at(),
        "unregistered_senders": (f"{senders} institutions sent {records} records but are not in the registry "
                                 "(core.facility): they are outside every measure"),
        "stored_facts": stored.describe(con, facts_state),
        "trailing_window_days": measures.WINDOW_DAYS, "pace_window_months": trajectory.PACE_WINDOW_MONTHS,
        "projection_model": trajectory.MODEL, "survey_model": survey.MODEL,
        "small_cells": ("Every count here is of facilities or records, never of people: facility counts are public "
                        "(厚生局 lists, 医療施設調査), so no cell is suppressed. The small-cell rule (people < 10) "
                        "has nothing to apply to."),
    }


def build_adoption_report(con: duckdb.DuckDBPyConnection, as_of: date | None = None, target: Target | None = None,
                          warehouse: str = "", reference_dir: Path | None = None) -> AdoptionReport:
    """Every adoption table for `as_of` (default: the last day the warehouse has data for — so the same
    warehouse always gives the same report — or today in Japan when it has none)."""
    target = target or reference.default_target(reference_dir)
    facts_state = stored.build_facts(con)
    first, last = facts.data_span(con)
    basis = "given" if as_of else "latest data day in the warehouse" if last else "today (Asia/Tokyo): no data yet"
    as_of = as_of or last or today_in_japan()
    measures.build_months(con, first or as_of, as_of)
    facts.build_view_months(con, as_of)
    measures.build_cells(con)
    cells = measures.monthly_cells(con)
    prefectures = reference.prefectures(reference_dir)
    national_scopes = [("00", code) for code, _, _ in SEGMENTS]
    survey_frame = reference.survey(reference_dir)
    status = measures.facility_status(con, as_of)
    tables = {
        "adoption_monthly": _with_prefecture_names(measures.long_measures(cells), prefectures),
        "adoption_trajectory": _with_prefecture_names(_trajectory_rows(cells, national_scopes, target, as_of),
                                                      prefectures),
        "adoption_prefecture_gap": _with_prefecture_names(_prefecture_gap(cells, prefectures, target, as_of),
                                                          prefectures),
        "adoption_facility": _with_prefecture_names(status, prefectures),
        "adoption_reference_rates": _with_prefecture_names(
            reference_rates(status, reference.national_counts(reference_dir),
                            reference.prefecture_counts(reference_dir), as_of), prefectures),
        "ehr_survey_rates": survey.survey_rates(survey_frame),
        "ehr_survey_projection": survey.survey_projection(survey_frame, target),
    }
    inputs = _inputs(con, as_of, basis, target, warehouse, facts_state)
    tables["adoption_inputs"] = pl.DataFrame({"key": list(inputs), "value": [str(v) for v in inputs.values()]})
    return AdoptionReport(as_of, target, tables, cells, survey_frame, inputs)
