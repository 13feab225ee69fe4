"""The small terminology subsets the generator draws from (data/reference/terminology/*.csv).

- general_order_code.csv `code,display,yj_prefix` — 一般名処方マスタ subset (the validator checks 一般名 codes
  against this file too: a code outside it is K-TERM-GENERAL-ORDER)
- yj_code.csv `code,display,general_order_code` — a few YJ-coded products
- medis_disease.csv `code,display,icd10` — MEDIS 病名管理番号 subset with ICD-10 (2013) codes
"""

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TERMINOLOGY_DIR = Path(__file__).resolve().parents[2] / "data" / "reference" / "terminology"


@dataclass(frozen=True)
class Drug:
    code: str
    display: str
    is_yj: bool  # True: YJ code; False: 一般名処方コード

    @property
    def therapeutic_class(self) -> str:
        return self.code[:4]

    @property
    def unit(self) -> tuple[str, str]:
        """MERIT-9 dose unit (code, display) from the dosage form in the name."""
        return ("CAP", "カプセル") if "カプセル" in self.display else ("TAB", "錠")


@dataclass(frozen=True)
class Disease:
    code: str
    display: str
    icd10: str


def _rows(name: str, directory: Path | None = None) -> list[dict[str, str]]:
    with open((directory or TERMINOLOGY_DIR) / name, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=4)
def general_order_drugs(directory: Path | None = None) -> tuple[Drug, ...]:
    return tuple(Drug(r["code"], r["display"], False) for r in _rows("general_order_code.csv", directory))


@lru_cache(maxsize=4)
def general_order_codes(directory: Path | None = None) -> frozenset[str]:
    """The 一般名処方コード set a valid MedicationRequest may use."""
    return frozenset(d.code for d in general_order_drugs(directory))


@lru_cache(maxsize=4)
def yj_drugs(directory: Path | None = None) -> tuple[Drug, ...]:
    return tuple(Drug(r["code"], r["display"], True) for r in _rows("yj_code.csv", directory))


@lru_cache(maxsize=4)
def diseases(directory: Path | None = None) -> tuple[Disease, ...]:
    return tuple(Disease(r["code"], r["display"], r["icd10"]) for r in _rows("medis_disease.csv", directory))
