"""Plausibility rules over rows pivoted per person × checkup: what fails, with which rule, and which items go."""

import polars as pl
import pytest

from pipelines.checkups.plausibility import (
    BMI,
    BMI_TOLERANCE,
    FAILURE_SCHEMA,
    HEIGHT,
    WEIGHT,
    apply_plausibility,
    pivot_checkups,
    plausibility_rules,
)
from pipelines.checkups.rows import CHECKUP_KEY
from pipelines.rules import RULES
from pipelines.validation.ig_rules import failures
from tests.checkups.helpers import cda, planned, specific_checkup, xml_rows

SBP1, DBP1, SBP2, DBP2 = "9A751000000000001", "9A761000000000001", "9A752000000000001", "9A762000000000001"
HBA1C = "3D046000001906202"


@pytest.fixture(scope="module")
def rows() -> pl.DataFrame:
    return xml_rows(cda(specific_checkup()))


def edit(rows: pl.DataFrame, code: str, **values) -> pl.DataFrame:
    hit = pl.col("item_code") == code
    return rows.with_columns(**{k: pl.when(hit).then(pl.lit(v)).otherwise(pl.col(k)) for k, v in values.items()})


def value(rows: pl.DataFrame, code: str) -> float:
    return rows.filter(item_code=code)["value_number"][0]


def check(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, set[tuple[str, str]]]:
    passing, failed = apply_plausibility(rows)
    assert failed.schema == pl.Schema(FAILURE_SCHEMA)
    assert passing.height + failed.select("item_code").unique().height == rows.height
    return passing, failed, set(zip(failed["rule_id"], failed["item_code"]))


def test_rule_ids_are_catalogued_and_clean_checkups_pass():
    assert all(r.rule_id in RULES for r in plausibility_rules())
    clean = pl.concat([xml_rows(cda(c)) for c in planned()[:30]])
    passing, failed, _ = check(clean)
    assert failed.is_empty() and passing.equals(clean)


def test_bmi_within_tolerance_passes_and_beyond_fails_on_the_bmi_only(rows):
    expected = value(rows, WEIGHT) / (value(rows, HEIGHT) / 100) ** 2
    assert check(edit(rows, BMI, value_number=round(expected + BMI_TOLERANCE - 0.05, 1)))[2] == set()
    passing, failed, found = check(edit(rows, BMI, value_number=round(expected + BMI_TOLERANCE + 0.2, 1)))
    assert found == {("K-CHECKUP-BMI", BMI)} and BMI not in passing["item_code"].to_list()
    assert HEIGHT in passing["item_code"].to_list() and "kg" in failed["message"][0]


def test_systolic_below_diastolic_fails_that_readings_pair(rows):
    swapped = edit(edit(rows, SBP2, value_number=value(rows, DBP2)), DBP2, value_number=value(rows, SBP2))
    _, failed, found = check(swapped)
    assert found == {("K-CHECKUP-BP", SBP2), ("K-CHECKUP-BP", DBP2)} and "2回目" in failed["message"][0]
    equal = edit(rows, SBP1, value_number=value(rows, DBP1))
    assert check(equal)[2] == set()  # systolic ≥ diastolic holds


def test_out_of_range_unless_flagged_lx_hx(rows):
    assert check(edit(rows, HBA1C, value_number=56.0))[2] == {("K-CHECKUP-RANGE", HBA1C)}
    assert check(edit(rows, HBA1C, value_number=20.0, interpretation="HX"))[2] == set()
    assert check(edit(rows, HBA1C, value_number=56.0, interpretation="HX"))[2] == set()
    assert check(edit(rows, HBA1C, value_number=1.0, interpretation="LX"))[2] == set()
    not_a_number = edit(rows, HBA1C, value_number=None, value_text="5..6")
    _, failed, found = check(not_a_number)
    assert found == {("K-CHECKUP-RANGE", HBA1C)} and "not a number" in failed["message"][0]


def test_an_out_of_range_weight_fails_once_not_also_bmi(rows):
    _, _, found = check(edit(rows, WEIGHT, value_number=value(rows, WEIGHT) * 1000))  # grams, not kilograms
    assert found == {("K-CHECKUP-RANGE", WEIGHT)}


def test_unknown_and_missing_item_codes(rows):
    unknown = edit(rows, "9N766000000000011", item_code="9N761000000000011", item_name=None)
    assert check(unknown)[2] == {("K-CHECKUP-ITEM", "9N761000000000011")}
    no_code = edit(rows, "9N766000000000011", item_code=None, item_name=None)
    passing, _, found = check(no_code)
    assert found == {("K-CHECKUP-ITEM", "(no code)")} and passing["item_code"].null_count() == 0


def test_failures_name_the_checkup_and_never_the_identifier(rows):
    other = rows.with_columns(document_id=pl.lit("OTHER-1"))
    both = pl.concat([edit(rows, HBA1C, value_number=56.0), other])
    passing, failed, _ = check(both)
    assert failed.select(CHECKUP_KEY).unique().height == 1 and failed["document_id"][0] == rows["document_id"][0]
    assert passing.filter(document_id="OTHER-1").height == rows.height
    member = rows["member_id"][0]
    assert not any(member in m or member.split(":")[2] in m for m in failed["message"])


def test_rules_run_directly_over_the_pivot(rows):
    pivot = pivot_checkups(edit(rows, SBP1, value_number=50.0))
    assert pivot.height == 1 and pivot["sbp_0"][0] is None  # out of range: not a measurement for BP rules
    assert failures(pivot, plausibility_rules(), "checkup_index")["rule_id"].to_list() == ["K-CHECKUP-RANGE"]
