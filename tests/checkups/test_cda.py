"""特定健診 CDA documents → common rows; malformed, unsafe and incomplete documents are refused with their rule."""

import copy
import time

import pytest

from pipelines.checkups.cda import CheckupFormatError, parse_checkup_document
from pipelines.checkups.rows import ROW_COLUMNS
from pipelines.generate.checkup_faults import BILLION_LAUGHS, EXTERNAL_ENTITY
from tests.checkups.helpers import cda, specific_checkup, xml_rows


def test_rows_carry_the_header_and_every_item():
    c = specific_checkup()
    rows = xml_rows(cda(c))
    assert rows.columns == ROW_COLUMNS and rows.height == len(c.results.items)
    p = c.patient
    first = rows.row(0, named=True)
    assert first["sex"] == p.gender and first["birth_date"] == p.birth_date.isoformat()
    assert first["checkup_date"] == c.day.isoformat() and first["program"] == "010"
    assert first["program_name"] == "特定健診" and first["institution_number"] == c.facility.inst
    assert first["document_id"] == c.document_id and first["source_form"] == "xml"
    assert first["member_id"].startswith(p.insurer + ":") and "０" not in first["member_id"]  # NFKC
    by_code = {r["item_code"]: r for r in rows.iter_rows(named=True)}
    sbp2 = by_code["9A752000000000001"]  # inside a blood-pressure organizer
    assert sbp2["value_type"] == "PQ" and sbp2["value_unit"] == "mm[Hg]" and sbp2["value_number"] > 60
    history = by_code["9N056160400000049"]  # 具体的な既往歴, in the 既往歴 entryRelationship
    assert history["value_type"] == "ST" and history["value_text"]
    urine = by_code["1A020000000191111"]
    assert urine["value_type"] == "CO" and urine["value_code_system"] == "urn:oid:1.2.392.200119.6.2102"


def test_full_width_identifier_parts_are_nfkc_normalised():
    text = cda(specific_checkup())
    insurer = text.split('root="1.2.392.200119.6.101" extension="', 1)[1].split('"', 1)[0]
    full_width = insurer.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    wide = text.replace(f'extension="{insurer}"', f'extension="{full_width}"', 1)
    assert xml_rows(wide)["member_id"][0] == xml_rows(text)["member_id"][0]


def test_declared_encoding_of_decoded_text_does_not_matter():
    text = cda(specific_checkup())
    assert xml_rows(text.replace('encoding="UTF-8"', 'encoding="Shift_JIS"', 1)).equals(xml_rows(text))


def test_malformed_is_k_xml():
    text = cda(specific_checkup())
    with pytest.raises(CheckupFormatError) as err:
        parse_checkup_document(text[: len(text) // 2])
    assert err.value.rule_id == "K-XML"


@pytest.mark.parametrize("doctype", [BILLION_LAUGHS, EXTERNAL_ENTITY,
                                     '<!DOCTYPE ClinicalDocument SYSTEM "http://example.invalid/x.dtd">'])
def test_dtd_entities_and_external_references_are_refused_unexpanded(doctype):
    declaration, rest = cda(specific_checkup()).split("\n", 1)
    ref = "&lol9;" if "lol9" in doctype else "&xxe;" if "xxe" in doctype else ""
    text = f"{declaration}\n{doctype}\n{rest.replace('</title>', ref + '</title>', 1)}"
    started = time.perf_counter()
    with pytest.raises(CheckupFormatError) as err:
        parse_checkup_document(text)
    assert err.value.rule_id == "K-XML-UNSAFE"
    assert time.perf_counter() - started < 0.5  # refused at the declaration: nothing was expanded or fetched
    assert "root:" not in err.value.message


def test_a_billion_laughs_sized_for_real_is_still_fast():
    lol = '<!ENTITY a0 "' + "x" * 1000 + '">' + "".join(f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 50}">'
                                                        for i in range(1, 30))
    text = f'<?xml version="1.0"?><!DOCTYPE d [{lol}]><d>&a29;</d>'
    started = time.perf_counter()
    with pytest.raises(CheckupFormatError):
        parse_checkup_document(text)
    assert time.perf_counter() - started < 0.5


REMOVALS = {
    "birthTime": ("<birthTime ", "/>"),
    "administrativeGenderCode": ("<administrativeGenderCode ", "/>"),
    "serviceEvent code": ('<code code="010"', "/>"),
    "保険者番号": ('<id root="1.2.392.200119.6.101"', "/>"),
    "被保険者証等番号": ('<id root="1.2.392.200119.6.205"', "/>"),
    "健診機関番号": ('<id root="1.2.392.200119.6.102" extension', "/>"),
    "document id": ('<id root="1.2.392.200119.6.102.1', "/>"),
}


@pytest.mark.parametrize("field", list(REMOVALS))
def test_missing_header_field_is_k_checkup(field):
    text = cda(specific_checkup())
    start_tag, end = REMOVALS[field]
    while start_tag in text:  # every occurrence (the 健診機関 id appears in author and custodian)
        start = text.index(start_tag)
        text = text[:start] + text[text.index(end, start) + len(end):]
    with pytest.raises(CheckupFormatError) as err:
        parse_checkup_document(text)
    assert err.value.rule_id == "K-CHECKUP", err.value.message


def test_not_a_clinical_document_is_k_checkup():
    with pytest.raises(CheckupFormatError) as err:
        parse_checkup_document('<?xml version="1.0"?><index xmlns="urn:x"/>')
    assert err.value.rule_id == "K-CHECKUP"


def test_a_non_numeric_quantity_is_kept_as_text():
    c = copy.deepcopy(specific_checkup())
    text = cda(c)
    weight = next(i for i in c.results.items if i.code == "9N006000000000001")
    bad = text.replace(f'value="{weight.number:.10g}" unit="kg"', 'value="6O.5" unit="kg"', 1)
    row = xml_rows(bad).filter(item_code="9N006000000000001").row(0, named=True)
    assert row["value_number"] is None and row["value_text"] == "6O.5" and row["value_type"] == "PQ"


def test_a_grouping_observation_yields_no_row_but_its_members_do():
    text = cda(specific_checkup())
    group = ('<entry><observation classCode="OBS" moodCode="EVN"><code code="9A110" '
             'codeSystem="1.2.392.200119.6.1006"/><entryRelationship typeCode="COMP"><observation classCode="OBS" '
             'moodCode="EVN"><code code="9A110160700000011" codeSystem="1.2.392.200119.6.1005"/>'
             '<value xsi:type="CD" code="2" codeSystem="1.2.392.200119.6.2001"/></observation></entryRelationship>'
             '</observation></entry>')
    grouped = xml_rows(text.replace("</section>", group + "</section>", 1))
    assert grouped.height == xml_rows(text).height + 1
    assert grouped.filter(item_code="9A110160700000011")["value_code"].to_list() == ["2"]
