"""reports: analyst- and sender-facing outputs (DuckDB tables + files under data/reports/)."""

from contextlib import closing

import dagster as dg

from assets.ops import KEY as RUN_SUMMARY
from pipelines.reports.quality import quality_by_facility_rule, write_quality_report
from pipelines.resources import KarteWarehouse


@dg.asset(key=["reports", "quality"], group_name="reports", kinds={"duckdb", "html"}, deps=[RUN_SUMMARY])
def quality(karte: KarteWarehouse) -> dg.MaterializeResult:
    """reports.quality_by_facility_rule: one row per sending facility × rule, plus quality.html / CSVs."""
    with closing(karte.connect()) as con:
        frame = quality_by_facility_rule(con)
        con.register("quality_frame", frame)
        con.execute("CREATE OR REPLACE TABLE reports.quality_by_facility_rule AS SELECT * FROM quality_frame")
        con.unregister("quality_frame")
        paths = write_quality_report(con, karte.settings().reports)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": frame.height,
        "files": dg.MetadataValue.json([str(p) for p in paths]),
        "html": dg.MetadataValue.path(str(paths[-1])),
    })
