"""The prerequisite: 電子カルテ adoption (医療施設調査, every 3 years since 2008). No EHR, no connection — so the
survey's trend bounds how far the connection rollout can get by the target date.

Rates are recomputed from the published counts where both are published (adopters / facilities, rounded half
up to 0.1 % as MHLW prints them) and checked against the published rate; where counts are not published the
published rate is used and said so.

Projection: least squares on logit(rate) against the survey date — a logistic trend with a 100 % ceiling, the
same S-curve as projection.py, fitted to 5–6 census points per segment. The 95 % band is a prediction interval
(Student t with n − 2 degrees of freedom): the scatter around the trend is model error, not sampling error
(the survey is a census), and it applies to 2030 as much as to the past.
"""

import math
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import polars as pl

from pipelines.reports.adoption.reference import Target

#: two-sided 95 % Student t quantiles by degrees of freedom (1–30); beyond, the normal 1.96
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
MODEL = "least squares on logit(rate) ~ survey date (logistic trend, ceiling 100 %); 95 % prediction interval"
LAST_YEAR_SEARCHED = 2100
PROJECTION_SCHEMA = {
    "segment": pl.String, "segment_ja": pl.String, "points_used": pl.Int64, "fit_years": pl.String,
    "latest_rate_pct": pl.Float64, "projection_date": pl.Date, "target_level_pct": pl.Float64,
    "projected_rate_pct": pl.Float64, "projected_low_pct": pl.Float64, "projected_high_pct": pl.Float64,
    "reach_year": pl.Float64, "reach_year_low": pl.Float64, "reach_year_high": pl.Float64, "status": pl.String,
    "model": pl.String,
}


def t_quantile_975(df: int) -> float:
    return _T975[df - 1] if 1 <= df <= len(_T975) else 1.959963984540054


def round_half_up(value: float, places: int = 1) -> float:
    return float(Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def survey_rates(survey: pl.DataFrame) -> pl.DataFrame:
    """grain: survey year × segment — published rate, the rate recomputed from its counts, and whether they agree."""
    rows = []
    for r in survey.sort("segment", "survey_year").iter_rows(named=True):
        computed = None
        if r["adopters"] is not None and r["facilities"]:
            computed = round_half_up(r["adopters"] * 100 / r["facilities"])
        rows.append({
            "survey_year": r["survey_year"], "as_of": r["as_of"], "segment": r["segment"],
            "segment_ja": r["segment_ja"], "numerator": r["adopters"], "denominator": r["facilities"],
            "published_rate_pct": r["rate_pct"], "computed_rate_pct": computed,
            "reproduces_published": None if computed is None else computed == r["rate_pct"],
            "rate_basis": ("adopters / facilities (both published)" if computed is not None
                           else "published rate; counts not published"),
            "denominator_source": r["source"], "confidence": r["confidence"],
        })
    return pl.DataFrame(rows, schema_overrides={"numerator": pl.Int64, "denominator": pl.Int64,
                                                "computed_rate_pct": pl.Float64,
                                                "reproduces_published": pl.Boolean})


def _year_fraction(day: date) -> float:
    start = date(day.year, 1, 1)
    return day.year + (day - start).days / (date(day.year + 1, 1, 1) - start).days


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _expit(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def trend(years: list[float], rates_pct: list[float]) -> dict | None:
    """Least-squares logistic trend; None with fewer than 3 points (no residual variance to speak of)."""
    if len(years) < 3:
        return None
    x = np.array(years, dtype=float)
    y = np.array([_logit(r / 100) for r in rates_pct])
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    sigma = math.sqrt(float(residual @ residual) / (len(x) - 2))
    return {"intercept": float(intercept), "slope": float(slope), "sigma": sigma, "n": len(x),
            "x_mean": float(x.mean()), "sxx": float(((x - x.mean()) ** 2).sum()), "t": t_quantile_975(len(x) - 2)}


def predict(fit: dict, year: float) -> tuple[float, float, float]:
    """(rate, 95 % low, 95 % high) in % at `year` (decimal year)."""
    centre = fit["intercept"] + fit["slope"] * year
    se = fit["sigma"] * math.sqrt(1 + 1 / fit["n"] + (year - fit["x_mean"]) ** 2 / fit["sxx"])
    half = fit["t"] * se
    return _expit(centre) * 100, _expit(centre - half) * 100, _expit(centre + half) * 100


def reach_years(fit: dict, level: float, start: float) -> tuple[float | None, float | None, float | None]:
    """(point, earliest, latest) decimal year at which the trend (its upper / lower band) reaches `level`."""
    point = (_logit(level) - fit["intercept"]) / fit["slope"] if fit["slope"] > 0 else None
    grid = np.arange(start, LAST_YEAR_SEARCHED + 0.005, 0.01)
    bands = np.array([predict(fit, float(x)) for x in grid])
    earliest = next((float(x) for x, b in zip(grid, bands) if b[2] >= level * 100), None)
    latest = next((float(x) for x, b in zip(grid, bands) if b[1] >= level * 100), None)
    return point, earliest, latest


def survey_projection(survey: pl.DataFrame, target: Target) -> pl.DataFrame:
    """grain: survey segment — the trend's rate at the target date and the year it reaches the target level."""
    rows = []
    at = _year_fraction(target.by)
    for (segment,), group in survey.sort("survey_year").group_by("segment", maintain_order=True):
        points = group.filter(pl.col("rate_pct").is_not_null())
        years = [_year_fraction(date.fromisoformat(d)) for d in points["as_of"]]
        fit = trend(years, points["rate_pct"].to_list())
        row = {"segment": segment, "segment_ja": group["segment_ja"][0], "points_used": points.height,
               "fit_years": f"{points['survey_year'].min()}–{points['survey_year'].max()}",
               "latest_rate_pct": points["rate_pct"][-1] if points.height else None,
               "projection_date": target.by, "target_level_pct": target.level * 100, "model": MODEL}
        if fit:
            rate, low, high = predict(fit, at)
            point, earliest, latest = reach_years(fit, target.level, max(years))
            row |= {"projected_rate_pct": rate, "projected_low_pct": low, "projected_high_pct": high,
                    "reach_year": None if point is None or point > LAST_YEAR_SEARCHED else round(point, 1),
                    "reach_year_low": None if earliest is None else round(earliest, 1),
                    "reach_year_high": None if latest is None else round(latest, 1),
                    "status": ("on track" if latest is not None and latest <= at
                               else "off track" if earliest is None or earliest > at else "uncertain")}
        rows.append(row)
    return pl.DataFrame(rows, schema=PROJECTION_SCHEMA)


def curve(fit: dict, start: float, end: float, step: float = 0.25) -> list[tuple[float, float, float, float]]:
    """(year, rate, low, high) along the trend, for the chart."""
    return [(float(x), *predict(fit, float(x))) for x in np.arange(start, end + step / 2, step)]
