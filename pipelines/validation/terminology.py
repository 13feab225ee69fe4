"""Code lists the validator checks against: the CLINS JLAC10 lists (pipelines/fhir/jlac10.py) and the
一般名処方マスタ subset shipped in data/reference/terminology/ (replace that file with the full MHLW
master in production; its columns are documented in its header)."""

import csv
import functools
from dataclasses import dataclass

from pipelines.config import REFERENCE_DIR
from pipelines.fhir import jlac10

TERMINOLOGY_DIR = REFERENCE_DIR / "terminology"


@dataclass(frozen=True)
class Terminology:
    core_labo: dict[str, str]  # JLAC10 code → CLINS item
    infection_labo: dict[str, str]
    general_order_codes: frozenset[str]

    @property
    def all_labo_items(self) -> dict[str, str]:
        return {**self.core_labo, **self.infection_labo}


def _codes(filename: str) -> frozenset[str]:
    path = TERMINOLOGY_DIR / filename
    with path.open(encoding="utf-8", newline="") as handle:
        return frozenset(row["code"] for row in csv.DictReader(handle))


@functools.cache
def load_terminology() -> Terminology:
    return Terminology(
        core_labo=dict(jlac10.CORE_LABO),
        infection_labo=dict(jlac10.INFECTION_LABO),
        general_order_codes=_codes("general_order_code.csv"),
    )
