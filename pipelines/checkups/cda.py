"""特定健診情報ファイル (MHLW 電子的な標準様式, HL7 CDA R2) → common rows, one document (one person) at a time.

    parse_checkup_document(xml_text) -> list[dict]     one dict per item, columns of rows.ROW_SCHEMA
    raises CheckupFormatError(rule_id, message)         K-XML / K-XML-UNSAFE / K-CHECKUP

Parsing goes through defusedxml with every DTD forbidden: a document declaring a DOCTYPE (entities,
billion laughs, external entities / XXE) is rejected as K-XML-UNSAFE when the declaration is met, before
anything is expanded or fetched. The national format has no DTD, so nothing legitimate is lost.

Where the items are: every `observation` under `component/structuredBody`, at any depth — directly in a
section entry, inside an `organizer` (一連検査グループ such as blood pressure 1st / 2nd reading) or inside
another observation's `entryRelationship` (e.g. 既往歴 → 具体的な既往歴). Grouping elements carry no value of
their own and yield no row.
"""

import re
import unicodedata
from datetime import date
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from pipelines.checkups import codes
from pipelines.checkups.codes import PROGRAM_NAMES
from pipelines.checkups.items import checkup_items
from pipelines.checkups.rows import ROW_COLUMNS, member_id

MAX_DOCUMENT_CHARS = 10_000_000  # one person's document is tens of kB; anything near this is not a checkup
_NS = {"v3": codes.CDA_NAMESPACE}
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


def parse_xml(xml_text: str, what: str = "document") -> Element:
    """Parse with DTDs, entities and external references forbidden (K-XML-UNSAFE) — also for index.xml."""
    if len(xml_text) > MAX_DOCUMENT_CHARS:
        raise CheckupFormatError("K-XML", f"{what} is {len(xml_text)} characters (limit {MAX_DOCUMENT_CHARS})")
    try:
        return fromstring(xml_text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise CheckupFormatError("K-XML-UNSAFE", f"{what} declares a DTD or entities ({type(exc).__name__}); "
                                                 "checkup XML must not") from None
    except ParseError as exc:
        raise CheckupFormatError("K-XML", f"{what} is not well-formed XML: {exc}") from None


def _q(path: str) -> str:
    return "/".join(f"v3:{step}" for step in path.split("/"))


def _attr(root: Element, path: str, name: str) -> str | None:
    node = root.find(_q(path), _NS)
    value = node.get(name) if node is not None else None
    return value.strip() if value and value.strip() else None


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
    for ident in role.findall("v3:id", _NS):
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
    for path in ("author/assignedAuthor/representedOrganization/id", "author/assignedAuthor/id",
                 "custodian/assignedCustodian/representedCustodianOrganization/id"):
        value = _attr(root, path, "extension")
        if value:
            value = unicodedata.normalize("NFKC", value)
            if not _TEN_DIGITS.match(value):
                raise CheckupFormatError("K-CHECKUP", f"健診機関番号 {value!r} is not 10 digits")
            return value
    raise CheckupFormatError("K-CHECKUP", "no 健診機関番号 (author/assignedAuthor/representedOrganization/id)")


def _header(root: Element) -> dict:
    if root.tag != f"{{{codes.CDA_NAMESPACE}}}ClinicalDocument":
        raise CheckupFormatError("K-CHECKUP", f"root element is {root.tag}, not a CDA ClinicalDocument "
                                              f"in {codes.CDA_NAMESPACE}")
    document_id = _attr(root, "id", "extension") or _attr(root, "id", "root")
    if document_id is None:
        raise CheckupFormatError("K-CHECKUP", "ClinicalDocument/id missing")
    role = root.find(_q("recordTarget/patientRole"), _NS)
    if role is None:
        raise CheckupFormatError("K-CHECKUP", "recordTarget/patientRole missing")
    sex_code = _attr(role, "patient/administrativeGenderCode", "code")
    if sex_code not in _SEX:
        raise CheckupFormatError("K-CHECKUP", f"administrativeGenderCode {sex_code!r} is not 1 (男) or 2 (女)")
    event = "documentationOf/serviceEvent"
    program = _attr(root, f"{event}/code", "code")
    if program is None:
        raise CheckupFormatError("K-CHECKUP", "documentationOf/serviceEvent/code (健診プログラムサービスコード) missing")
    performed = _attr(root, f"{event}/effectiveTime", "value") or _attr(root, f"{event}/effectiveTime/low", "value")
    return {
        "member_id": _member_id(role),
        "sex": _SEX[sex_code],
        "birth_date": _iso_day(_attr(role, "patient/birthTime", "value"), "birthTime"),
        "checkup_date": _iso_day(performed, "serviceEvent/effectiveTime (健診実施日)"),
        "program": program,
        "program_name": PROGRAM_NAMES.get(program),
        "institution_number": _institution(root),
        "document_id": document_id,
    }


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _tag(name: str) -> str:
    return f"{{{codes.CDA_NAMESPACE}}}{name}"


_CODE, _VALUE, _INTERPRETATION, _RELATIONSHIP = (_tag(n) for n in ("code", "value", "interpretationCode",
                                                                  "entryRelationship"))


def _children(obs: Element) -> dict[str, Element]:
    """The first child of each tag (one pass; ElementPath.find per child costs more than the parse)."""
    found: dict[str, Element] = {}
    for child in obs:
        found.setdefault(child.tag, child)
    return found


def _item(parts: dict[str, Element]) -> dict:
    code_el, value = parts.get(_CODE), parts.get(_VALUE)
    code = code_el.get("code") if code_el is not None else None
    sent_type = (value.get(_XSI_TYPE) or "").rsplit(":", 1)[-1] if value is not None else None
    known = checkup_items().get(code or "")
    row = {"item_code": code, "item_name": known.name if known else None, "value_type": sent_type or None,
           "value_number": None, "value_unit": None, "value_code": None, "value_code_system": None,
           "value_text": None}
    if sent_type == "PQ":
        raw = value.get("value")
        row["value_number"] = _number(raw)
        row["value_unit"] = value.get("unit")
        if raw is not None and row["value_number"] is None:
            row["value_text"] = raw  # not a number: kept as sent, K-CHECKUP-RANGE names it
    elif sent_type in ("CD", "CO", "CE", "CV"):
        # CD / CO as the item reference says, so both forms agree whatever the sender chose
        row["value_type"] = known.value_type if known and known.value_type in ("CD", "CO") else \
            ("CO" if sent_type == "CO" else "CD")
        row["value_code"] = value.get("code")
        system = value.get("codeSystem")
        row["value_code_system"] = f"urn:oid:{system}" if system and _OID.match(system) else system
    elif sent_type == "ST":
        row["value_text"] = (value.text or "").strip() or None
    interpretation = parts.get(_INTERPRETATION)
    row["interpretation"] = interpretation.get("code") if interpretation is not None else None
    return row


def _is_group(parts: dict[str, Element]) -> bool:
    """An observation that only groups others (no value, not a 特定健診 item, members in entryRelationship)."""
    code = parts.get(_CODE)
    return (_VALUE not in parts and _RELATIONSHIP in parts
            and (code is None or code.get("codeSystem") != codes.ITEM_OID))


def parse_checkup_document(xml_text: str) -> list[dict]:
    """One row per item of one person's 特定健診情報ファイル; raises CheckupFormatError."""
    root = parse_xml(xml_text)
    header = _header(root)
    body = root.find(_q("component/structuredBody"), _NS)
    if body is None:
        raise CheckupFormatError("K-CHECKUP", "component/structuredBody missing")
    rows = []
    for obs in body.iter(_tag("observation")):
        parts = _children(obs)
        if _is_group(parts):
            continue
        row = {**header, **_item(parts), "source_form": "xml"}
        rows.append({c: row[c] for c in ROW_COLUMNS})
    return rows
