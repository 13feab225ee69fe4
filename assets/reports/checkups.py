"""reports/checkup_*: 特定健診 participation and results by prefecture, sex and 5-year age band (small cells
suppressed), as DuckDB tables plus checkups.html / CSV / XLSX under the reports folder."""

from contextlib import closing

import dagster as dg

from assets.metadata import table_metadata
from assets.ops import KEY as RUN_SUMMARY
from pipelines.reports.checkups import build_checkup_report, write_checkup_report
from pipelines.resources import KarteWarehouse
from pipelines.warehouse import transaction

RESULTS = dg.AssetKey(["reports", "checkup_results"])
PARTICIPATION = dg.AssetKey(["reports", "checkup_participation"])


@dg.multi_asset(
    name="checkup_report",
    specs=[dg.AssetSpec(RESULTS, group_name="reports", kinds={"duckdb", "html"}, deps=[RUN_SUMMARY],
                        description="reports.checkup_results: prefecture × sex × age band — メタボ, HbA1c ≥ 6.5 %, "
                                    "BP ≥ 140/90 (counts < 10 suppressed)."),
           dg.AssetSpec(PARTICIPATION, group_name="reports", kinds={"duckdb"}, deps=[RUN_SUMMARY],
                        description="reports.checkup_participation: prefecture × sex × age band — examinees over "
                                    "insured persons aged 40–74 the warehouse knows (a reference figure).")],
)
def checkup_report(karte: KarteWarehouse):
    """The checkup report for the fiscal year of the latest checkup in the warehouse (reproducible: no clock)."""
    settings = karte.settings()
    with closing(karte.connect()) as con:
        latest = con.execute("SELECT max(checkup_date) FROM core.checkup_result").fetchone()[0]
        if latest is None:
            for key in (RESULTS, PARTICIPATION):
                yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": 0, "note": "no checkups yet"})
            return
        report = build_checkup_report(con, as_of=latest)
        with transaction(con):
            for key, frame in ((RESULTS, report.results), (PARTICIPATION, report.participation)):
                con.register("checkup_frame", frame)
                con.execute(f"CREATE OR REPLACE TABLE reports.{key.path[-1]} AS SELECT * FROM checkup_frame")
                con.unregister("checkup_frame")
        paths = write_checkup_report(report, settings.reports)
        for key in (RESULTS, PARTICIPATION):
            yield dg.MaterializeResult(asset_key=key, metadata=table_metadata(
                con, f"reports.{key.path[-1]}", as_of=report.as_of.isoformat(), fiscal_year=report.fiscal_year,
                files=dg.MetadataValue.json([str(p) for p in paths])))
