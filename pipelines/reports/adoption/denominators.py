"""Rates against the national statistics: how much of the country the registry covers and is connected.

The registry (core.facility) is the rollout's own denominator; the 医療施設調査 counts say how that registry
compares with every facility in Japan. Each row names the survey release it divided by: the latest national
figures on or before the as-of year (1 October counts), and per prefecture the latest 動態調査 release that
published the type (hospitals 2022-03, clinics 2021-11; dental clinics are not published per prefecture there).
"""

from datetime import date

import polars as pl

from pipelines.reports.adoption.measures import rate_pct

_PREFECTURE_COLUMN = {"hospital": "hospitals", "clinic": "clinics", "dental": "dental_clinics"}


def _counts(status: pl.DataFrame, by_prefecture: bool) -> pl.DataFrame:
    keys = ["prefecture_code", "facility_type"] if by_prefecture else ["facility_type"]
    return status.group_by(keys).agg(registered=pl.len(), connected=pl.col("connected_on").is_not_null().sum())


def _national_denominators(national: pl.DataFrame, as_of: date) -> pl.DataFrame:
    usable = national.filter(pl.col("year") <= as_of.year, pl.col("facility_type").is_in(list(_PREFECTURE_COLUMN)))
    if usable.is_empty():
        usable = national.filter(pl.col("facility_type").is_in(list(_PREFECTURE_COLUMN)))
    return usable.sort("year").group_by("facility_type").last().select(
        "facility_type", pl.col("facilities").alias("denominator"), pl.col("year").alias("denominator_year"),
        pl.col("as_of").alias("denominator_as_of"), pl.col("source").alias("denominator_source"))


def _prefecture_denominators(prefecture_counts: pl.DataFrame) -> pl.DataFrame:
    parts = []
    for ftype, column in _PREFECTURE_COLUMN.items():
        parts.append(prefecture_counts.filter(pl.col(column).is_not_null(), pl.col("prefecture_code") != "00")
                     .sort("as_of").group_by("prefecture_code").last()
                     .select("prefecture_code", pl.lit(ftype).alias("facility_type"),
                             pl.col(column).alias("denominator"), pl.col("year").alias("denominator_year"),
                             pl.col("as_of").alias("denominator_as_of"), pl.col("source").alias("denominator_source")))
    return pl.concat(parts)


def reference_rates(status: pl.DataFrame, national: pl.DataFrame, prefecture_counts: pl.DataFrame,
                    as_of: date) -> pl.DataFrame:
    """grain: prefecture (00 = national) × facility type × measure (registry_coverage, connected_share)."""
    nat = _counts(status, False).join(_national_denominators(national, as_of), on="facility_type", how="right")
    nat = nat.with_columns(pl.lit("00").alias("prefecture_code"))
    pref = _counts(status, True).join(_prefecture_denominators(prefecture_counts),
                                      on=["prefecture_code", "facility_type"], how="right")
    rows = pl.concat([nat, pref], how="diagonal_relaxed").with_columns(
        pl.col("registered", "connected").fill_null(0).cast(pl.Int64))
    parts = [rows.select("prefecture_code", "facility_type", pl.lit(measure).alias("measure"),
                         pl.col(numerator).alias("numerator"), "denominator",
                         rate_pct(pl.col(numerator), pl.col("denominator")).alias("rate_pct"),
                         pl.lit(basis).alias("denominator_basis"), "denominator_year", "denominator_as_of",
                         "denominator_source")
             for measure, numerator, basis in (
                 ("registry_coverage", "registered", "facilities in the national statistics (医療施設調査)"),
                 ("connected_share", "connected", "facilities in the national statistics (医療施設調査)"))]
    return pl.concat(parts).sort("measure", "prefecture_code", "facility_type")
