"""The 322 特定健診 item codes (第4期; CodeSystem urn:oid:1.2.392.200119.6.1005) with what Karte knows of each.

`data/reference/checkup_items.csv`, one row per code:

- item_code, item_name: the code list of domain_spec Appendix A3 (eCheckupReport package
  CodeSystem-specialCheckup-observations-cs.json), names as the CodeSystem writes them.
- value_type: PQ (numeric) / CD (coded) / CO (ordered coded) / ST (text), from the JLAC10 result-type digits the
  codes end in (…01, …02, …26, …28 numeric; …11 coded; …49 text); CO for the 尿定性 items (choice table 2102,
  sent with ordinalValue in the official sample).
- ucum_unit: ours — the UCUM unit Karte expects for numeric items (the national spec's units were not available;
  these are the units Japanese laboratories report, in UCUM spelling, e.g. mm[Hg], mg/dL, mL/min/{1.73_m2}).
- input_min, input_max: ours — plausible input limits. A value outside them is an input error (rule
  K-CHECKUP-RANGE) unless the sender flags it as out of the measurable range (interpretation LX 入力下限以下 /
  HX 入力上限以上). They are deliberately wider than any reference range: they catch unit mix-ups (g vs kg,
  mmol/L vs mg/dL), swapped fields and typing errors, never unusual but real results. Where a JLAC10 code
  names several methods the limits are the same for all of them.
- choice_table: the choice table (urn:oid:1.2.392.200119.6.xxxx) the official sample codes the item with, where
  it shows one; empty where unknown.
"""

import csv
import functools
from dataclasses import dataclass

import polars as pl

from pipelines.config import REFERENCE_DIR

ITEMS_CSV = REFERENCE_DIR / "checkup_items.csv"
VALUE_TYPES = ("PQ", "CD", "CO", "ST")


@dataclass(frozen=True)
class CheckupItem:
    code: str
    name: str
    value_type: str
    unit: str | None
    input_min: float | None
    input_max: float | None
    choice_table: str | None


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None


@functools.cache
def checkup_items() -> dict[str, CheckupItem]:
    """item code → CheckupItem, in the CodeSystem's order."""
    with open(ITEMS_CSV, encoding="utf-8", newline="") as fh:
        return {
            r["item_code"]: CheckupItem(r["item_code"], r["item_name"], r["value_type"], r["ucum_unit"] or None,
                                        _number(r["input_min"]), _number(r["input_max"]),
                                        r["choice_table"] or None)
            for r in csv.DictReader(fh)
        }


@functools.cache
def _item_frame() -> pl.DataFrame:
    return pl.DataFrame(
        [(i.code, i.name, i.value_type, i.unit, i.input_min, i.input_max) for i in checkup_items().values()],
        schema={"item_code": pl.String, "reference_name": pl.String, "reference_value_type": pl.String,
                "reference_unit": pl.String, "input_min": pl.Float64, "input_max": pl.Float64},
        orient="row",
    )


def item_frame() -> pl.DataFrame:
    """The reference as a frame (item_code, reference_name, reference_value_type, reference_unit, input_min,
    input_max) for joins."""
    return _item_frame().clone()


def item_name(code: str) -> str | None:
    item = checkup_items().get(code)
    return item.name if item else None
