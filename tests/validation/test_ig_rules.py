"""The IG rules as expressions, on small hand-made frames."""

import polars as pl
import pytest

from pipelines.fhir import systems
from pipelines.validation import ig_rules


def matches(pattern: str, values: list[str]) -> list[bool]:
    return pl.Series(values).str.contains(pattern).to_list()


@pytest.mark.parametrize(("value", "ok"), [
    ("00012345:あいう:１８７:05", True),   # the IG's own example: kana 記号, full-width 番号
    ("00012345:あいう:１８７:", True),     # 枝番 may be empty
    ("06123456::12345:01", True),          # empty 記号
    ("0012345:あいう:187:05", False),      # 7-digit 保険者番号
    ("00012345:あ い:187:05", False),      # half-width space
    ("00012345:あ　い:187:05", False),     # full-width space
    ("00012345:あいう:187:123", False),    # 3-digit 枝番
    ("00012345:a^b:187:05", False),        # '^' is excluded by the IG's class
])
def test_member_id_r1013(value, ok):
    assert matches(ig_rules.MEMBER_ID_RE, [value]) == [ok]


@pytest.mark.parametrize(("value", "ok"), [
    ("1318814790", True), ("4731234567", True), ("0131234567", True),
    ("4811234567", False),   # prefecture 48 does not exist (the IG regex would admit it)
    ("0011234567", False),   # prefecture 00
    ("1348814790", False),   # 点数表 4 (調剤) is not a sender of clinical data
    ("131881479", False),    # 9 digits
])
def test_institution_number(value, ok):
    assert matches(ig_rules.INSTITUTION_NUMBER_RE, [value]) == [ok]


@pytest.mark.parametrize(("value", "ok"), [
    ("1318814790^2024^0123-IDa-203949583949", True),
    ("1318814790^1999^0123", False),
    ("131881479^2024^0123", False),
    ("1318814790^2024^" + "x" * 37, False),
])
def test_bundle_identifier_r2152(value, ok):
    assert matches(ig_rules.BUNDLE_IDENTIFIER_RE, [value]) == [ok]


def _bundle(**overrides) -> dict:
    row = {
        "bundle_key": 1, "entry_count": 3, "profiles": [systems.BUNDLE_CLINS + "|1"],
        "bundle_profile": systems.BUNDLE_CLINS, "expected_type": "collection", "expected_first": "Patient",
        "expected_doc_types": [], "identifier_rule": True, "member_id_from": "patient", "coverage_member_id": None,
        "bundle_type": "collection", "identifier_system": systems.BUNDLE_IDENTIFIER,
        "identifier_value": "1318814790^2024^A1", "resource_type_tags": ["Condition"],
        "entry_types": ["Patient", "Condition", "Condition"], "composition_type_code": None,
        "patient_raw_id": 10, "patient_profiles": [systems.PATIENT_ECS], "member_ids": ["00012345:あいう:１８７:05"],
        "name_texts": ["牧野 爛漫"], "patient_structure_error": None,
    }
    row.update(overrides)
    return row


NULLABLE_TEXT = {**{c: pl.String for c in ("bundle_profile", "expected_type", "expected_first", "coverage_member_id",
                                             "composition_type_code", "patient_structure_error")},
                 "expected_doc_types": pl.List(pl.String)}


def bundle_failures(*rows: dict) -> list[tuple[int, str]]:
    frame = pl.DataFrame(list(rows), schema_overrides={**NULLABLE_TEXT, "profiles": pl.List(pl.String)})
    result = ig_rules.failures(frame, ig_rules.bundle_rules(), "bundle_key")
    return sorted(zip(result["bundle_key"].to_list(), result["rule_id"].to_list()))


def test_valid_clins_bundle_breaks_no_rule():
    assert bundle_failures(_bundle()) == []


@pytest.mark.parametrize(("overrides", "rule_id"), [
    ({"profiles": ["http://jpfhir.jp/fhir/eReferral/StructureDefinition/JP_Bundle_eReferral"],
      "bundle_profile": "http://jpfhir.jp/fhir/eReferral/StructureDefinition/JP_Bundle_eReferral",
      "expected_type": None, "expected_first": None}, "K-PROFILE"),
    ({"bundle_type": "document"}, "K-BUNDLE-TYPE"),
    ({"identifier_value": "1318814790^1999^A1"}, "R2152"),
    ({"resource_type_tags": ["MedicationRequest"]}, "R02142"),
    ({"entry_types": ["Patient", "Condition", "Observation"]}, "R02143"),
    ({"entry_types": ["Condition", "Patient", "Condition"], "resource_type_tags": ["Condition"]}, "R0211"),
    ({"member_ids": ["00012345:あいう:１８７:05", "00012345:x:1:01"]}, "R1012"),
    ({"member_ids": ["0012345:あいう:187:05"]}, "R1013"),
    ({"name_texts": ["牧野　爛漫"]}, "R1113"),
    ({"member_id_from": "coverage", "coverage_member_id": "06123456:12345:67890:1"}, "K-CHECKUP-SUBJECT"),
])
def test_each_bundle_rule_fires_on_its_fault(overrides, rule_id):
    assert (1, rule_id) in bundle_failures(_bundle(**overrides))


def test_r1013_message_never_shows_the_identifier():
    frame = pl.DataFrame([_bundle(member_ids=["0012345:あいう:187:05"])],
                         schema_overrides={**NULLABLE_TEXT, "profiles": pl.List(pl.String)})
    message = ig_rules.failures(frame, ig_rules.bundle_rules(), "bundle_key")["message"][0]
    assert "0012345" not in message and "あいう" not in message and "9999999:xxx:999:99" in message
