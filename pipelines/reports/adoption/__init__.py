"""Adoption report: how far the rollout is from the 2030 target, per prefecture and facility type.

    build_adoption_report(con, as_of, target) -> AdoptionReport   every table, as polars frames (report.py)
    write_adoption_report(report, out_dir, formats) -> [paths]     html / csv / xlsx / parquet (export.py)

Modules: facts (per-facility facts, SQL) → measures (monthly cells and rates) → trajectory + projection (pace,
logistic projection) · survey (EHR adoption survey) · denominators (against the national statistics) ·
page + charts + tilemap (the self-contained HTML) · xlsx (the workbook) · reference (shipped figures).
"""

from pipelines.reports.adoption.export import FORMATS, write_adoption_report
from pipelines.reports.adoption.reference import Target, default_target
from pipelines.reports.adoption.report import TABLES, AdoptionReport, build_adoption_report

__all__ = ["FORMATS", "TABLES", "AdoptionReport", "Target", "build_adoption_report", "default_target",
           "write_adoption_report"]
