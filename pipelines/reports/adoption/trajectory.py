"""Where each series stands against the target: required pace, observed pace, projected date, status.

Required pace: the facilities still to connect to reach the target level, spread evenly over the months left
until the target date. Observed pace: net new connections per month over the last 6 months (long enough to
smooth a single month's batch of go-lives, short enough to show a change of pace). The linear date extends the
observed pace; the projected date and its 95 % interval come from the logistic fit (projection.py).

Status:  reached · on track (the whole 95 % interval of the projected date is on or before the target date, and
the observed pace is at least the required pace) · at risk (the interval straddles the target date, or the curve
gets there only by speeding up beyond the observed pace — an S-curve early on always promises acceleration)
· off track (the whole interval is after the target date) · not estimable (too little data for a curve).
"""

import math
from datetime import date

import polars as pl

from pipelines.reports.adoption.projection import date_after, fit_adoption_curve, months_between
from pipelines.reports.adoption.reference import Target

PACE_WINDOW_MONTHS = 6
MODEL = "logistic event-time MLE on monthly connected counts (ceiling 100 % of registered)"
#: the columns of every trajectory row (national per segment, and per prefecture)
SCHEMA = {
    "prefecture_code": pl.String, "segment": pl.String, "segment_ja": pl.String, "registered": pl.Int64,
    "connected": pl.Int64, "rate_connected_pct": pl.Float64, "target_level_pct": pl.Float64,
    "target_date": pl.Date, "gap_pp": pl.Float64, "facilities_short": pl.Int64, "months_remaining": pl.Float64,
    "required_per_month": pl.Float64, "required_pp_per_month": pl.Float64, "observed_per_month": pl.Float64,
    "observed_pp_per_month": pl.Float64, "pace_window_months": pl.Float64, "linear_reach_date": pl.Date,
    "projected_reach_date": pl.Date, "projected_reach_low": pl.Date, "projected_reach_high": pl.Date,
    "status": pl.String, "model": pl.String,
}


def _status(rate: float | None, target: Target, low: date | None, high: date | None, fitted: bool,
            pace_sufficient: bool) -> str:
    if rate is not None and rate >= target.level:
        return "reached"
    if not fitted:
        return "not estimable"
    if low is None or low > target.by:
        return "off track"
    if high is not None and high <= target.by and pace_sufficient:
        return "on track"
    return "at risk"


def series_trajectory(series: pl.DataFrame, target: Target, as_of: date) -> dict:
    """`series`: one scope's monthly cells (month, snapshot_date, registered, connected), oldest first."""
    series = series.sort("snapshot_date")
    last = series.row(-1, named=True)
    registered, connected = int(last["registered"]), int(last["connected"])
    rate = connected / registered if registered else None
    needed = max(0, math.ceil(target.level * registered - 1e-9) - connected)
    months_left = max(months_between(as_of, target.by), 0.0)
    window = series.tail(PACE_WINDOW_MONTHS + 1)
    span = months_between(window["snapshot_date"][0], window["snapshot_date"][-1])
    observed = (connected - int(window["connected"][0])) / span if span > 0 else None
    linear = None
    if needed == 0:
        linear = as_of
    elif observed and observed > 0:
        linear = date_after(as_of, needed / observed)
    fit = fit_adoption_curve(series["snapshot_date"][0].replace(day=1), series["snapshot_date"].to_list(),
                             series["connected"].to_list(), registered) if registered else None
    point, low, high = fit.reach_dates(target.level) if fit else (None, None, None)
    return {
        "registered": registered, "connected": connected,
        "rate_connected_pct": rate * 100 if rate is not None else None,
        "target_level_pct": target.level * 100, "target_date": target.by,
        "gap_pp": (target.level - rate) * 100 if rate is not None else None,
        "facilities_short": needed, "months_remaining": round(months_left, 1),
        "required_per_month": needed / months_left if months_left > 0 else (0.0 if needed == 0 else None),
        "required_pp_per_month": (max(target.level - rate, 0.0) * 100 / months_left
                                  if rate is not None and months_left > 0 else None),
        "observed_per_month": observed,
        "observed_pp_per_month": observed * 100 / registered if observed is not None and registered else None,
        "pace_window_months": round(span, 1) if span else 0.0,
        "linear_reach_date": linear,
        "projected_reach_date": point, "projected_reach_low": low, "projected_reach_high": high,
        "status": _status(rate, target, low, high, fit is not None,
                          observed is not None and observed * months_left >= needed),
        "model": MODEL,
    }


def curve_points(series: pl.DataFrame, target: Target) -> list[tuple[date, float, float, float]]:
    """(month end, fitted share, 95 % low, 95 % high) from the series start to the target date (for the chart)."""
    series = series.sort("snapshot_date")
    registered = int(series["registered"][-1])
    origin = series["snapshot_date"][0].replace(day=1)
    fit = fit_adoption_curve(origin, series["snapshot_date"].to_list(), series["connected"].to_list(),
                             registered) if registered else None
    if fit is None:
        return []
    points = []
    months = months_between(origin, target.by)
    for k in range(int(months) + 2):
        day = date_after(origin, k)
        if day is None or day > target.by:
            break
        low, high = fit.share_band(k)
        points.append((day, fit.share_at(k), low, high))
    return points

