"""The 特定健診 item reference: the 322 codes of domain_spec Appendix A3 with our types, units and limits."""

import re

from pipelines.checkups.items import VALUE_TYPES, checkup_items, item_frame
from tests.conftest import SHARED

SPEC = SHARED / "docs" / "domain_spec.md"


def test_322_codes_with_a_type_each():
    items = checkup_items()
    assert len(items) == 322 and item_frame().height == 322
    for code, item in items.items():
        assert re.fullmatch(r"[0-9A-Z]{17}", code) and item.name
        assert item.value_type in VALUE_TYPES
        if item.value_type == "PQ":
            assert item.unit and item.input_min is not None and item.input_min < item.input_max, code
        else:
            assert item.unit is None and item.input_min is None and item.input_max is None, code
        assert item.choice_table is None or re.fullmatch(r"urn:oid:1\.2\.392\.200119\.6\.[0-9]+", item.choice_table)


def test_codes_are_the_spec_list():
    if not SPEC.is_file():  # the shared docs are not part of the repository
        return
    listed = re.findall(r"\b([0-9][A-Z0-9]{16}) ", SPEC.read_text(encoding="utf-8").split("### A3.", 1)[1])
    assert set(listed) == set(checkup_items())


def test_key_items():
    items = checkup_items()
    assert (items["9N011000000000001"].unit, items["9A751000000000001"].unit) == ("kg/m2", "mm[Hg]")
    assert items["3D046000001906202"].unit == "%" and items["8A065000002391901"].unit == "mL/min/{1.73_m2}"
    assert items["1A020000000191111"].value_type == "CO"  # 尿糖: ordered choice (ordinalValue in the sample)
    assert items["9N501000000000011"].choice_table == "urn:oid:1.2.392.200119.6.1008"
    assert items["9N511000000000049"].value_type == "ST"
