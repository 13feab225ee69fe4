"""Small builders for checkup tests: a planned checkup of a tiny generated population, in either form."""

import functools
import tempfile
from datetime import date
from pathlib import Path

import polars as pl

from pipelines.checkups.cda import parse_checkup_document
from pipelines.checkups.rows import ROW_SCHEMA
from pipelines.generate.checkup_cda import cda_document
from pipelines.generate.checkup_plan import Checkup, plan_checkups
from pipelines.generate.facilities import make_facilities
from pipelines.generate.patients import make_patients

START, END = date(2025, 1, 1), date(2026, 10, 31)


@functools.cache
def planned(seed: int = 3) -> tuple[Checkup, ...]:
    """Every checkup the generator plans for 8 facilities and 150 patients (treat them as read-only)."""
    facilities = make_facilities(8, seed, START, END)
    truth = Path(tempfile.mkdtemp(prefix="karte-checkups-")) / "patients.csv"
    patients = make_patients(150, seed, facilities, truth)
    return tuple(plan_checkups(seed, patients, facilities, START, END))


def specific_checkup() -> Checkup:
    """A 特定健診 with two blood pressure readings and a 既往歴 text (organizer and entryRelationship)."""
    return next(c for c in planned() if c.program == "010" and c.results.get("sbp2") and c.results.get("history_text"))


def xml_rows(text: str) -> pl.DataFrame:
    return pl.DataFrame(parse_checkup_document(text), schema=ROW_SCHEMA)


def cda(c: Checkup) -> str:
    return cda_document(c)
