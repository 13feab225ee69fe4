"""The shipped reference figures (data/reference/): denominators, the EHR adoption survey and the target.
Each file carries its year and source on every row; the report names the file and row it used."""

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from pipelines.config import REFERENCE_DIR

PREFECTURES_CSV = "prefectures.csv"
NATIONAL_COUNTS_CSV = "facility_counts_national.csv"
PREFECTURE_COUNTS_CSV = "facility_counts_by_prefecture.csv"
SURVEY_CSV = "ehr_adoption_survey.csv"
TARGET_CSV = "adoption_target.csv"
#: every reference file the report reads (listed in its inputs)
FILES = (PREFECTURES_CSV, NATIONAL_COUNTS_CSV, PREFECTURE_COUNTS_CSV, SURVEY_CSV, TARGET_CSV)


def _read(name: str, reference_dir: Path | None = None, **overrides) -> pl.DataFrame:
    return pl.read_csv((reference_dir or REFERENCE_DIR) / name, infer_schema_length=0, **overrides)


def prefectures(reference_dir: Path | None = None) -> pl.DataFrame:
    """prefecture_code (JIS 01–47), prefecture_name_ja, prefecture_name_en."""
    return _read(PREFECTURES_CSV, reference_dir)


def national_counts(reference_dir: Path | None = None) -> pl.DataFrame:
    """year, as_of, facility_type (hospital | general_hospital | clinic | dental), facilities, source."""
    return _read(NATIONAL_COUNTS_CSV, reference_dir).with_columns(
        pl.col("year").cast(pl.Int32), pl.col("facilities").cast(pl.Int64))


def prefecture_counts(reference_dir: Path | None = None) -> pl.DataFrame:
    """One row per prefecture (00 = national) × survey date: hospitals, clinics, dental_clinics (null = not
    published in that release), year, as_of, source."""
    return _read(PREFECTURE_COUNTS_CSV, reference_dir).with_columns(
        pl.col("hospitals", "clinics", "dental_clinics").cast(pl.Int64), pl.col("year").cast(pl.Int32))


def survey(reference_dir: Path | None = None) -> pl.DataFrame:
    """The 電子カルテ adoption series (医療施設調査): survey_year, segment, adopters, facilities, rate_pct, …"""
    return _read(SURVEY_CSV, reference_dir).with_columns(
        pl.col("survey_year").cast(pl.Int32), pl.col("adopters", "facilities").cast(pl.Int64),
        pl.col("rate_pct").cast(pl.Float64))


@dataclass(frozen=True)
class Target:
    """Share of registered facilities connected (level, 0–1) by a date."""

    level: float
    by: date
    source: str = ""
    note: str = ""

    def __post_init__(self):
        if not 0 < self.level < 1:
            raise ValueError(f"target level must lie strictly between 0 and 1, got {self.level}")


def default_target(reference_dir: Path | None = None) -> Target:
    row = _read(TARGET_CSV, reference_dir).row(0, named=True)
    return Target(float(row["target_level"]), date.fromisoformat(row["target_date"]), row["source"], row["note"])
