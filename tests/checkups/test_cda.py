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


# --- the parser refuses what defusedxml refuses, and reads everything else the same ----------------------------

def _tree(node) -> tuple:
    return (node.tag, sorted(node.attrib.items()), node.text, node.tail, [_tree(child) for child in node])


def _defusedxml_outcome(text: str) -> tuple:
    """What parse_xml did with defusedxml (forbid_dtd) before the prolog-only refusal replaced it: the oracle."""
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        return ("tree", _tree(fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)))
    except DefusedXmlException as exc:
        return ("K-XML-UNSAFE", f"document declares a DTD or entities ({type(exc).__name__}); checkup XML must not")
    except ParseError as exc:
        return ("K-XML", f"document is not well-formed XML: {exc}")


def _outcome(text: str) -> tuple:
    from pipelines.checkups.cda import parse_xml

    try:
        return ("tree", _tree(parse_xml(text)))
    except CheckupFormatError as exc:
        return (exc.rule_id, exc.message)


_PROLOGS = {
    "billion laughs": BILLION_LAUGHS,
    "external entity": EXTERNAL_ENTITY,
    "external DTD": '<!DOCTYPE ClinicalDocument SYSTEM "http://example.invalid/x.dtd">',
    "public DTD": '<!DOCTYPE ClinicalDocument PUBLIC "-//x//DTD y//EN" "http://example.invalid/x.dtd">',
    "parameter entity": '<!DOCTYPE ClinicalDocument [<!ENTITY % p SYSTEM "http://example.invalid/p.dtd"> %p;]>',
    "DTD after a comment and a PI": '<!-- c --><?pi x?>\n<!DOCTYPE ClinicalDocument [<!ENTITY a "b">]>',
    "bare DOCTYPE": "<!DOCTYPE ClinicalDocument>",
    "unterminated DTD": '<!DOCTYPE ClinicalDocument [<!ENTITY a "b"',
    "comment and PI only": "<!-- <!DOCTYPE ClinicalDocument> --><?pi <!DOCTYPE x>?>",
}
_BODIES = {
    "DOCTYPE text in a comment": "<d><!-- <!DOCTYPE d [<!ENTITY a 'b'>]> --></d>",
    "DOCTYPE text in CDATA": "<d><![CDATA[<!DOCTYPE d [<!ENTITY a 'b'>]>]]></d>",
    "DOCTYPE inside the root": "<d><!DOCTYPE d></d>",
    "DOCTYPE after the root": "<d/><!DOCTYPE d>",
    "undefined entity": "<d>&xxe;</d>",
    "undefined entity in an attribute": '<d a="&xxe;"/>',
    "predefined entities and character references": '<d a="&lt;&#x41;&quot;">&amp;&#12354;&gt;</d>',
    "namespaces": '<v3:d xmlns:v3="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                  'xsi:type="PQ"><v3:e xml:lang="ja">テ</v3:e></v3:d>',
    "unbound prefix": "<x:d/>",
    "two roots": "<d/><e/>",
    "mismatched tags": "<d><e></d></e>",
    "empty": "",
    "blank": "  \n",
    "lone angle bracket": "<",
    "NUL": "<d>\x00</d>",
    "byte order mark": "\ufeff<d/>",
    "garbage before the declaration": 'x<?xml version="1.0"?><d/>',
}


@pytest.mark.parametrize("name", list(_PROLOGS))
def test_a_prolog_is_refused_or_read_as_defusedxml_did(name):
    declaration, rest = cda(specific_checkup()).split("\n", 1)
    text = f"{declaration}\n{_PROLOGS[name]}\n{rest}"
    assert _outcome(text) == _defusedxml_outcome(text)


@pytest.mark.parametrize("name", list(_BODIES))
def test_odd_xml_is_refused_or_read_as_defusedxml_did(name):
    text = _BODIES[name]
    assert _outcome(text) == _defusedxml_outcome(text)
    assert _outcome(f'<?xml version="1.0" encoding="UTF-8"?>\n{text}') == \
        _defusedxml_outcome(f'<?xml version="1.0" encoding="UTF-8"?>\n{text}')


def test_a_whole_document_and_its_truncations_read_as_defusedxml_did():
    text = cda(specific_checkup())
    for cut in (len(text), len(text) - 1, len(text) * 9 // 10, len(text) // 2, 120, 39, 1):
        assert _outcome(text[:cut]) == _defusedxml_outcome(text[:cut]), cut


def test_a_lone_surrogate_is_k_xml_not_a_crash():
    # defusedxml let the UnicodeEncodeError through, which stopped the whole staging step
    with pytest.raises(CheckupFormatError) as err:
        parse_checkup_document(cda(specific_checkup()).replace("</title>", "\udc80</title>", 1))
    assert err.value.rule_id == "K-XML"


def test_tuples_and_dicts_are_the_same_rows_in_row_column_order():
    from pipelines.checkups.cda import HEADER_COLUMNS, ITEM_COLUMNS, checkup_document_rows

    assert [*HEADER_COLUMNS, *ITEM_COLUMNS, "source_form"] == ROW_COLUMNS
    text = cda(specific_checkup())
    assert [dict(zip(ROW_COLUMNS, row, strict=True)) for row in checkup_document_rows(text)] == \
        parse_checkup_document(text)
