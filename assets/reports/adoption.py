"""reports/adoption_*: how far the rollout is from the 2030 target (tables in schema `reports` + adoption.html,
adoption.xlsx and one CSV / Parquet per table under the reports folder)."""

from contextlib import closing
from datetime import date

import dagster as dg
import polars as pl

from assets.metadata import table_metadata
from assets.ops import KEY as RUN_SUMMARY
from pipelines.reports.adoption import TABLES, build_adoption_report, write_adoption_report
from pipelines.reports.adoption.export import FORMATS, parse_formats
from pipelines.reports.adoption.stored import refresh_facts
from pipelines.resources import KarteWarehouse
from pipelines.warehouse import transaction

KEYS = {name: dg.AssetKey(["reports", name]) for name in TABLES}
MONTHLY = KEYS["adoption_monthly"]


class AdoptionReportConfig(dg.Config):
    as_of: str = ""  # YYYY-MM-DD; empty: the latest day the warehouse has data for
    formats: str = ",".join(FORMATS)


def rates_are_consistent(monthly: pl.DataFrame) -> dg.AssetCheckResult:
    """Every rate is numerator / denominator, within 0–100 %, and names its denominator."""
    bad = monthly.filter(
        (pl.col("numerator") > pl.col("denominator")) | (pl.col("numerator") < 0)
        | pl.col("denominator_basis").is_null()
        | ((pl.col("denominator") > 0) & ((pl.col("rate_pct") - pl.col("numerator") * 100 / pl.col("denominator"))
                                          .abs() > 1e-9))
        | ((pl.col("denominator") == 0) & pl.col("rate_pct").is_not_null()))
    return dg.AssetCheckResult(asset_key=MONTHLY, check_name="rates_are_consistent", passed=bad.is_empty(),
                               metadata={"inconsistent_rows": bad.height})


@dg.multi_asset(
    name="adoption_report",
    specs=[dg.AssetSpec(key, group_name="reports", kinds={"duckdb", "html"} if name == "adoption_monthly"
                        else {"duckdb"}, deps=[RUN_SUMMARY],
                        description=f"reports.{name}: {TABLES[name][1]}.") for name, key in KEYS.items()],
    check_specs=[dg.AssetCheckSpec("rates_are_consistent", asset=MONTHLY)],
)
def adoption_report(config: AdoptionReportConfig, karte: KarteWarehouse):
    """The adoption report for one as-of date: every table replaced together, then the files."""
    settings = karte.settings()
    as_of = date.fromisoformat(config.as_of) if config.as_of else None
    with closing(karte.connect()) as con:
        refreshed = refresh_facts(con)  # so this and later reports read stored facts, not every bundle
        report = build_adoption_report(con, as_of=as_of, warehouse=str(settings.warehouse))
        with transaction(con):
            for name, frame in report.tables.items():
                con.register("adoption_frame", frame)
                con.execute(f"CREATE OR REPLACE TABLE reports.{name} AS SELECT * FROM adoption_frame")
                con.unregister("adoption_frame")
        metadata = {name: table_metadata(con, f"reports.{name}") for name in report.tables}
    paths = write_adoption_report(report, settings.reports, parse_formats(config.formats))
    html = next((p for p in paths if p.suffix == ".html"), None)
    for name, key in KEYS.items():
        extra = {"as_of": report.as_of.isoformat()}
        if key == MONTHLY:
            extra |= {"files": dg.MetadataValue.json([str(p) for p in paths]),
                      "facts_refreshed": dg.MetadataValue.json(refreshed)}
            if html:
                extra["html"] = dg.MetadataValue.path(str(html))
        yield dg.MaterializeResult(asset_key=key, metadata={**metadata[name], **extra})
    yield rates_are_consistent(report.tables["adoption_monthly"])
