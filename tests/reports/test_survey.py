"""The EHR adoption survey: fed the published numbers, the report reproduces the published rates; its trend
projection has a known answer on a synthetic logistic series."""

import math
from datetime import date

import polars as pl
import pytest

from pipelines.reports.adoption import reference
from pipelines.reports.adoption.reference import Target
from pipelines.reports.adoption.survey import predict, round_half_up, survey_projection, survey_rates, trend

SHARED_SURVEY = reference.REFERENCE_DIR.parent.parent.parent / "shared" / "reference" / "ehr_adoption_national.csv"


def _published() -> pl.DataFrame:
    """The published figures as the report reads them (the shipped copy in data/reference/)."""
    return reference.survey()


def test_2023_published_rates_are_reproduced_from_their_counts():
    rates = {(r["survey_year"], r["segment"]): r for r in survey_rates(_published()).iter_rows(named=True)}
    hospitals, clinics = rates[(2023, "general_hospital_total")], rates[(2023, "general_clinic")]
    assert (hospitals["numerator"], hospitals["denominator"], hospitals["computed_rate_pct"]) == (4638, 7065, 65.6)
    assert (clinics["numerator"], clinics["denominator"], clinics["computed_rate_pct"]) == (57662, 104894, 55.0)
    assert hospitals["reproduces_published"] and clinics["reproduces_published"]


def test_every_rate_with_published_counts_is_reproduced():
    rates = survey_rates(_published())
    with_counts = rates.filter(pl.col("computed_rate_pct").is_not_null())
    assert with_counts.height == 22  # 2008–2017 all five segments, 2023 hospitals and clinics
    assert with_counts["reproduces_published"].all()
    without = rates.filter(pl.col("computed_rate_pct").is_null())
    assert (without["rate_basis"] == "published rate; counts not published").all()


def test_shipped_copy_equals_the_published_source():
    if not SHARED_SURVEY.exists():
        pytest.skip(f"{SHARED_SURVEY} not present (the product ships its own copy in data/reference/)")
    shipped = (reference.REFERENCE_DIR / reference.SURVEY_CSV).read_bytes()
    assert shipped == SHARED_SURVEY.read_bytes()


def test_rounding_is_half_up_as_published():
    assert round_half_up(38.75) == 38.8  # 279 / 720 (2008, 400 beds or more): binary floats would round to 38.7
    assert round_half_up(279 * 100 / 720) == 38.8


def test_trend_projection_has_the_known_answer():
    """Points on logit(rate) = −2 + 0.2 · (year − 2008): 95 % is reached where the logit is ln 19."""
    years = [2008.75, 2011.75, 2014.75, 2017.75, 2020.75, 2023.75]
    rates = [100 / (1 + math.exp(-(-2 + 0.2 * (y - 2008)))) for y in years]
    frame = pl.DataFrame({"survey_year": [int(y) for y in years], "as_of": [f"{int(y)}-10-01" for y in years],
                          "segment": ["synthetic"] * 6, "segment_ja": ["合成"] * 6, "adopters": [None] * 6,
                          "facilities": [None] * 6, "rate_pct": rates, "confidence": ["test"] * 6,
                          "source": ["test"] * 6}, schema_overrides={"adopters": pl.Int64, "facilities": pl.Int64})
    row = survey_projection(frame, Target(0.95, date(2030, 12, 31))).row(0, named=True)
    crossing = 2008 + (math.log(19) + 2) / 0.2
    assert row["reach_year"] == pytest.approx(crossing, abs=0.1)
    expected_2030 = 100 / (1 + math.exp(-(-2 + 0.2 * (2030.9973 - 2008))))
    assert row["projected_rate_pct"] == pytest.approx(expected_2030, abs=0.01)
    assert row["status"] == "off track"  # crosses in 2032.7, after the target date


def test_prediction_band_widens_away_from_the_data():
    years = [2008.75, 2011.75, 2014.75, 2017.75, 2020.75, 2023.75]
    fit = trend(years, [14.2, 21.9, 34.2, 46.7, 57.2, 65.6])
    near = predict(fit, 2023.75)
    far = predict(fit, 2030.99)
    assert near[1] < near[0] < near[2] and far[1] < far[0] < far[2]

    def logit_width(band):  # on the percent scale a band narrows near 100 %; on the model's scale it widens
        return math.log(band[2] / (100 - band[2])) - math.log(band[1] / (100 - band[1]))

    assert logit_width(far) > logit_width(near)
