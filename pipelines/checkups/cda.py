"""特定健診情報ファイル (MHLW 電子的な標準様式, HL7 CDA R2) → common rows, one document (one person) at a time.

    parse_checkup_document(xml_text) -> list[dict]     one dict per item, columns of rows.ROW_SCHEMA
    checkup_document_rows(xml_text) -> list[tuple]     the same rows as tuples in ROW_COLUMNS order
    read_checkup_document(xml_text) -> (header, items)  the header once and the items' own values (the ingest's bulk
                                                       path: one frame per window, not one per document)
    raises CheckupFormatError(rule_id, message)         K-XML / K-XML-UNSAFE / K-CHECKUP

Parsing refuses every DTD, as defusedxml's forbid_dtd does: a document declaring a DOCTYPE (entities, billion
laughs, external entities / XXE) is rejected as K-XML-UNSAFE when the declaration is met, before anything is
expanded or fetched. The national format has no DTD, so nothing legitimate is lost. The refusal runs as its
own expat pass over the prolog only (a DTD cannot appear anywhere else), stopped at the root element's start
tag; the tree is then built by the C ElementTree parser. Without a DOCTYPE there is nothing to expand or
fetch: the only entities left are XML's five predefined ones and character references, and any other entity
reference is a well-formedness error (K-XML). defusedxml's parser builds the same tree through a Python
callback per element, which cost more than everything else in the checkup staging put together.

Where the items are: every `observation` under `component/structuredBody`, at any depth — directly in a
section entry, inside an `organizer` (一連検査グループ such as blood pressure 1st / 2nd reading) or inside
another observation's `entryRelationship` (e.g. 既往歴 → 具体的な既往歴). Grouping elements carry no value of
their own and yield no row.
"""

import re
import unicodedata
from datetime import date
from xml.etree.ElementTree import Element, ParseError, XMLParser
from xml.parsers import expat

from defusedxml import DefusedXmlException, DTDForbidden

from pipelines.checkups import codes
from pipelines.checkups.codes import PROGRAM_NAMES
from pipelines.checkups.items import checkup_items
from pipelines.checkups.rows import ROW_COLUMNS, member_id

MAX_DOCUMENT_CHARS = 10_000_000  # one person's document is tens of kB; anything near this is not a checkup
_XSI_TYPE = f"{{{codes.XSI_NAMESPACE}}}type"
_OID = re.compile(r"^[0-2](\.[0-9]+)+$")
_TEN_DIGITS = re.compile(r"^[0-9]{10}$")
_SEX = {"1": "male", "2": "female", "M": "male", "F": "female", "male": "male", "female": "female"}


class CheckupFormatError(ValueError):
    """A checkup document Karte cannot read: `rule_id` (pipelines/rules.py) and a one-line message."""

    def __init__(self, rule_id: str, message: str):
        super().__init__(f"{rule_id}: {message}")
        self.rule_id = rule_id
        self.message = message


class _PrologRead(Exception):
    """The root element's start tag was reached: the prolog, the only place a DTD may stand, is behind us."""


def _refuse_doctype(name, sysid, pubid, has_internal_subset):
    raise DTDForbidden(name, sysid, pubid)


def _end_of_prolog(name, attributes):
    raise _PrologRead


def _refuse_dtd(xml_text: str) -> None:
    """Raise DTDForbidden if the prolog declares a DOCTYPE. A prolog expat cannot read is left to the full
    parse, which meets the same error at the same place and reports it as not well-formed."""
    # the separator makes this the same namespace-aware expat the tree parser is, so both read the prolog alike
    scanner = expat.ParserCreate(None, "}")
    scanner.StartDoctypeDeclHandler = _refuse_doctype
    scanner.StartElementHandler = _end_of_prolog
    try:
        scanner.Parse(xml_text, True)
    except (_PrologRead, expat.ExpatError):
        pass


def parse_xml(xml_text: str, what: str = "document") -> Element:
    """Parse with DTDs, entities and external references forbidden (K-XML-UNSAFE) — also for index.xml."""
    if len(xml_text) > MAX_DOCUMENT_CHARS:
        raise CheckupFormatError("K-XML", f"{what} is {len(xml_text)} characters (limit {MAX_DOCUMENT_CHARS})")
    try:
        _refuse_dtd(xml_text)
        parser = XMLParser()
        parser.feed(xml_text)
        return parser.close()
    except DefusedXmlException as exc:
        raise CheckupFormatError("K-XML-UNSAFE", f"{what} declares a DTD or entities ({type(exc).__name__}); "
                                                 "checkup XML must not") from None
    except ParseError as exc:
        raise CheckupFormatError("K-XML", f"{what} is not well-formed XML: {exc}") from None
    except UnicodeEncodeError as exc:
        raise CheckupFormatError("K-XML", f"{what} holds a lone surrogate at character {exc.start}: "
                                          "not encodable text") from None


def _tag(name: str) -> str:
    return f"{{{codes.CDA_NAMESPACE}}}{name}"


def _path(path: str) -> tuple[str, ...]:
    return tuple(_tag(step) for step in path.split("/"))


def _find(node: Element, path: tuple[str, ...]) -> Element | None:
    """The first element along `path` (child tags, outermost first), in ElementPath's document order: a later
    sibling is tried when an earlier one has no match below it. A single namespaced tag is matched by the C
    ElementTree without ElementPath, which is what makes this cheaper than `find("v3:a/v3:b", ns)`."""
    if len(path) == 1:
        return node.find(path[0])
    for child in node.findall(path[0]):
        found = _find(child, path[1:])
        if found is not None:
            return found
    return None


def _attr(node: Element, path: tuple[str, ...], name: str) -> str | None:
    found = _find(node, path)
    value = found.get(name) if found is not None else None
    return value.strip() if value and value.strip() else None


_ID = _path("id")
_ROLE = _path("recordTarget/patientRole")
_GENDER = _path("patient/administrativeGenderCode")
_BIRTH = _path("patient/birthTime")
_PROGRAM = _path("documentationOf/serviceEvent/code")
_PERFORMED = _path("documentationOf/serviceEvent/effectiveTime")
_PERFORMED_LOW = _path("documentationOf/serviceEvent/effectiveTime/low")
_BODY = _path("component/structuredBody")
_INSTITUTION = [_path(p) for p in ("author/assignedAuthor/representedOrganization/id", "author/assignedAuthor/id",
                                   "custodian/assignedCustodian/representedCustodianOrganization/id")]
_CLINICAL_DOCUMENT = _tag("ClinicalDocument")
_OBSERVATION, _CODE, _VALUE, _INTERPRETATION, _RELATIONSHIP = (
    _tag(n) for n in ("observation", "code", "value", "interpretationCode", "entryRelationship"))
#: the columns _header gives, then those _item gives, then source_form: ROW_COLUMNS (tests hold the two together)
HEADER_COLUMNS = ("member_id", "sex", "birth_date", "checkup_date", "program", "program_name", "institution_number",
                  "document_id")
ITEM_COLUMNS = ("item_code", "item_name", "value_type", "value_number", "value_unit", "value_code",
                "value_code_system", "value_text", "interpretation")


def _iso_day(value: str | None, field: str) -> str:
    if value is None:
        raise CheckupFormatError("K-CHECKUP", f"{field} missing")
    digits = value[:8]
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8])).isoformat()
    except ValueError:
        raise CheckupFormatError("K-CHECKUP", f"{field} {value!r} is not a date (YYYYMMDD)") from None


def _member_id(role: Element) -> str:
    parts: dict[str, str] = {}
    for ident in role.findall(_ID[0]):
        root_oid, ext = ident.get("root"), (ident.get("extension") or "").strip()
        for part, roots in codes.MEMBER_ID_ROOTS.items():
            if root_oid in roots and ext:
                parts.setdefault(part, ext)
    missing = [p for p in ("insurer", "number") if p not in parts]
    if missing:
        raise CheckupFormatError("K-CHECKUP", "recordTarget/patientRole/id lacks the insured person's "
                                              + " and ".join({"insurer": "保険者番号", "number": "被保険者証等番号"}[p]
                                                             for p in missing))
    return member_id(parts["insurer"], parts.get("symbol"), parts["number"], parts.get("branch"))


def _institution(root: Element) -> str:
    for path in _INSTITUTION:
        value = _attr(root, path, "extension")
        if value:
            value = unicodedata.normalize("NFKC", value)
            if not _TEN_DIGITS.match(value):
                raise CheckupFormatError("K-CHECKUP", f"健診機関番号 {value!r} is not 10 digits")
            return value
    raise CheckupFormatError("K-CHECKUP", "no 健診機関番号 (author/assignedAuthor/representedOrganization/id)")


def _header(root: Element) -> tuple:
    """The document's header values in HEADER_COLUMNS order; the checks run in the order the fields are read."""
    if root.tag != _CLINICAL_DOCUMENT:
        raise CheckupFormatError("K-CHECKUP", f"root element is {root.tag}, not a CDA ClinicalDocument "
                                              f"in {codes.CDA_NAMESPACE}")
    document_id = _attr(root, _ID, "extension") or _attr(root, _ID, "root")
    if document_id is None:
        raise CheckupFormatError("K-CHECKUP", "ClinicalDocument/id missing")
    role = _find(root, _ROLE)
    if role is None:
        raise CheckupFormatError("K-CHECKUP", "recordTarget/patientRole missing")
    sex_code = _attr(role, _GENDER, "code")
    if sex_code not in _SEX:
        raise CheckupFormatError("K-CHECKUP", f"administrativeGenderCode {sex_code!r} is not 1 (男) or 2 (女)")
    program = _attr(root, _PROGRAM, "code")
    if program is None:
        raise CheckupFormatError("K-CHECKUP", "documentationOf/serviceEvent/code (健診プログラムサービスコード) missing")
    performed = _attr(root, _PERFORMED, "value") or _attr(root, _PERFORMED_LOW, "value")
    return (
        _member_id(role),
        _SEX[sex_code],
        _iso_day(_attr(role, _BIRTH, "value"), "birthTime"),
        _iso_day(performed, "serviceEvent/effectiveTime (健診実施日)"),
        program,
        PROGRAM_NAMES.get(program),
        _institution(root),
        document_id,
    )


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _item(code_el: Element | None, value: Element | None, interpretation: Element | None, items: dict) -> tuple:
    """One observation's values in ITEM_COLUMNS order."""
    code = code_el.get("code") if code_el is not None else None
    sent_type = (value.get(_XSI_TYPE) or "").rsplit(":", 1)[-1] if value is not None else None
    known = items.get(code or "")
    value_type = sent_type or None
    number = unit = value_code = system = text = None
    if sent_type == "PQ":
        raw = value.get("value")
        number = _number(raw)
        unit = value.get("unit")
        if raw is not None and number is None:
            text = raw  # not a number: kept as sent, K-CHECKUP-RANGE names it
    elif sent_type in ("CD", "CO", "CE", "CV"):
        # CD / CO as the item reference says, so both forms agree whatever the sender chose
        value_type = known.value_type if known and known.value_type in ("CD", "CO") else \
            ("CO" if sent_type == "CO" else "CD")
        value_code = value.get("code")
        system = value.get("codeSystem")
        system = f"urn:oid:{system}" if system and _OID.match(system) else system
    elif sent_type == "ST":
        text = (value.text or "").strip() or None
    return (code, known.name if known else None, value_type, number, unit, value_code, system, text,
            interpretation.get("code") if interpretation is not None else None)


def read_checkup_document(xml_text: str) -> tuple[tuple, list[tuple]]:
    """(header in HEADER_COLUMNS order, one tuple per item in ITEM_COLUMNS order) of one person's
    特定健診情報ファイル — the ingest joins the two as frames; raises CheckupFormatError."""
    root = parse_xml(xml_text)
    header = _header(root)
    body = _find(root, _BODY)
    if body is None:
        raise CheckupFormatError("K-CHECKUP", "component/structuredBody missing")
    items = checkup_items()
    found = []
    for obs in body.iter(_OBSERVATION):
        code, value = obs.find(_CODE), obs.find(_VALUE)
        # a group only gathers others: no value, not a 特定健診 item, its members in entryRelationship
        if value is None and (code is None or code.get("codeSystem") != codes.ITEM_OID) \
                and obs.find(_RELATIONSHIP) is not None:
            continue
        found.append(_item(code, value, obs.find(_INTERPRETATION), items))
    return header, found


def checkup_document_rows(xml_text: str) -> list[tuple]:
    """One tuple per item of one person's 特定健診情報ファイル, in ROW_COLUMNS order; raises CheckupFormatError."""
    header, items = read_checkup_document(xml_text)
    return [(*header, *item, "xml") for item in items]


def parse_checkup_document(xml_text: str) -> list[dict]:
    """One row per item of one person's 特定健診情報ファイル; raises CheckupFormatError."""
    return [dict(zip(ROW_COLUMNS, row, strict=True)) for row in checkup_document_rows(xml_text)]
