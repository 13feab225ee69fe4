"""A checkup as 特定健診 XML: one CDA R2 document per person, and the ZIP archive a 健診機関 sends an insurer
(`<sender>_<receiver>_<yyyymmdd><n>_<kubun>.zip` with index.xml, summary.xml and DATA/<document>.xml).

The CDA follows domain_spec §3.1 (ClinicalDocument in urn:hl7-org:v3, recordTarget with the insured person's
ids, documentationOf/serviceEvent for the programme and 健診実施日, observations coded with
1.2.392.200119.6.1005). Blood pressure readings are grouped per reading in an `organizer`; an item carried
under another (具体的な既往歴 under 既往歴) sits in the parent's `entryRelationship`. The ids' roots, the
archive's folder layout and the index/summary namespace are not confirmed by the (unavailable) MHLW
specification: pipelines/checkups/codes.py says which ones.
"""

import io
import zipfile
from datetime import date
from xml.sax.saxutils import escape, quoteattr

from pipelines.checkups import codes as K
from pipelines.generate.checkup_fhir import is_questionnaire
from pipelines.generate.checkup_plan import Checkup
from pipelines.generate.checkup_values import ItemValue

KUBUN_SPECIFIC = "1"  # 実施区分: 特定健診
GENDER = {"male": "1", "female": "2"}
PROGRAM_REPORT_CODE = {"010": "10", "030": "41"}


def el(tag: str, attrs: dict | None = None, *children: str, text: str | None = None) -> str:
    """One XML element as text (attribute values and text escaped; None attributes left out)."""
    attr = "".join(f" {k}={quoteattr(str(v))}" for k, v in (attrs or {}).items() if v is not None)
    body = escape(text) if text is not None else "".join(children)
    return f"<{tag}{attr}>{body}</{tag}>" if body else f"<{tag}{attr}/>"


def number_text(value: float) -> str:
    return f"{value:.10g}"


def _value(item: ItemValue) -> str:
    if item.value_type == "PQ":
        return el("value", {"xsi:type": "PQ", "value": number_text(item.number), "unit": item.unit})
    if item.value_type in ("CD", "CO"):
        return el("value", {"xsi:type": item.value_type, "code": item.choice,
                            "codeSystem": item.choice_table.removeprefix("urn:oid:"), "displayName": item.display})
    return el("value", {"xsi:type": "ST"}, text=item.text)


def _observation(item: ItemValue, children: list[ItemValue]) -> str:
    parts = [el("code", {"code": item.code, "codeSystem": K.ITEM_OID, "displayName": item.name}), _value(item)]
    if item.interpretation:
        parts.append(el("interpretationCode", {"code": item.interpretation, "codeSystem": K.INTERPRETATION_OID}))
    parts += [el("entryRelationship", {"typeCode": "COMP"}, _observation(c, [])) for c in children]
    return el("observation", {"classCode": "OBS", "moodCode": "EVN"}, *parts)


def _entries(items: list[ItemValue]) -> list[str]:
    entries, grouped = [], set()
    for item in items:
        if item.parent is not None or item.code in grouped:
            continue
        if item.group:
            members = [i for i in items if i.group == item.group]
            grouped.update(m.code for m in members)
            organizer = el("organizer", {"classCode": "CLUSTER", "moodCode": "EVN"},
                           el("statusCode", {"code": "completed"}),
                           *[el("component", None, _observation(m, [])) for m in members])
            entries.append(el("entry", None, organizer))
            continue
        children = [i for i in items if i.parent == item.code]
        entries.append(el("entry", None, _observation(item, children)))
    return entries


def _ymd(day: date) -> str:
    return day.strftime("%Y%m%d")


def cda_document(c: Checkup) -> str:
    """One person's 特定健診情報ファイル (UTF-8 text)."""
    p, f = c.patient, c.facility
    ids = [el("id", {"root": K.MEMBER_ID_ROOTS["insurer"][0], "extension": p.insurer})]
    if p.symbol:
        ids.append(el("id", {"root": K.MEMBER_ID_ROOTS["symbol"][0], "extension": p.symbol}))
    ids.append(el("id", {"root": K.MEMBER_ID_ROOTS["number"][0], "extension": p.number}))
    if p.branch:
        ids.append(el("id", {"root": K.MEMBER_ID_ROOTS["branch"][0], "extension": p.branch}))
    organization = el("representedOrganization", None, el("id", {"root": K.INSTITUTION_ROOT, "extension": f.inst}),
                      el("name", None, text=f.name))
    questionnaire = [i for i in c.results.items if is_questionnaire(i.code)]
    exam = [i for i in c.results.items if not is_questionnaire(i.code)]
    sections = [el("component", None, el("section", None, el("title", None, text=title),
                                         el("text", None, text=f"{len(items)} 項目"), *_entries(items)))
                for title, items in (("検査結果", exam), ("問診結果", questionnaire)) if items]
    doc = el(
        "ClinicalDocument", {"xmlns": K.CDA_NAMESPACE, "xmlns:xsi": K.XSI_NAMESPACE},
        el("typeId", {"root": "2.16.840.1.113883.1.3", "extension": "POCD_HD000040"}),
        el("id", {"root": f"{K.INSTITUTION_ROOT}.1{f.inst}", "extension": c.document_id}),
        el("code", {"code": PROGRAM_REPORT_CODE[c.program], "codeSystem": "1.2.392.200119.6.1001"}),
        el("title", None, text="特定健康診査結果報告" if c.program == "010" else "健康診断結果報告"),
        el("effectiveTime", {"value": _ymd(c.sent_on)}),
        el("confidentialityCode", {"code": "N", "codeSystem": "2.16.840.1.113883.5.25"}),
        el("languageCode", {"code": "ja-JP"}),
        el("recordTarget", None, el("patientRole", None, *ids,
                                    el("addr", None, text=p.address),
                                    el("patient", None, el("name", None, text=p.kana_text),
                                       el("administrativeGenderCode", {"code": GENDER[p.gender],
                                                                       "codeSystem": K.GENDER_OID}),
                                       el("birthTime", {"value": _ymd(p.birth_date)})))),
        el("author", None, el("time", {"value": _ymd(c.sent_on)}),
           el("assignedAuthor", None, el("id", {"root": K.INSTITUTION_ROOT, "extension": f.inst}), organization)),
        el("custodian", None, el("assignedCustodian", None, el(
            "representedCustodianOrganization", None, el("id", {"root": K.INSTITUTION_ROOT, "extension": f.inst}),
            el("name", None, text=f.name)))),
        el("documentationOf", None, el("serviceEvent", {"classCode": "MPROT"},
                                       el("code", {"code": c.program, "codeSystem": K.PROGRAM_OID,
                                                   "displayName": K.PROGRAM_NAMES[c.program]}),
                                       el("effectiveTime", {"value": _ymd(c.day)}))),
        el("component", None, el("structuredBody", None, *sections)),
    )
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + doc + "\n"


def index_xml(sender: str, receiver: str, created: date, records: int) -> str:
    ns = {"xmlns": K.ARCHIVE_NAMESPACE}
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + el(
        "index", ns, el("interactionType", {"code": "1"}), el("creationTime", {"value": _ymd(created)}),
        el("sender", None, el("id", {"root": K.INSTITUTION_ROOT, "extension": sender})),
        el("receiver", None, el("id", {"root": K.MEMBER_ID_ROOTS["insurer"][0], "extension": receiver})),
        el("serviceEventType", {"code": KUBUN_SPECIFIC}), el("totalRecordCount", {"value": str(records)})) + "\n"


def summary_xml(subjects: int, cost: int) -> str:
    def money(tag: str, value: int) -> str:
        return el(tag, {"value": str(value), "currency": "JPY"})

    return '<?xml version="1.0" encoding="UTF-8"?>\n' + el(
        "summary", {"xmlns": K.ARCHIVE_NAMESPACE}, el("serviceEventType", {"code": KUBUN_SPECIFIC}),
        el("totalSubjectCount", {"value": str(subjects)}), money("totalCostAmount", cost),
        money("totalPaymentAmount", 0), money("totalClaimAmount", cost),
        money("totalPaymentByOtherProgram", 0)) + "\n"


def archive_name(sender: str, receiver: str, day: date, split: int = 1, kubun: str = KUBUN_SPECIFIC) -> str:
    return f"{sender}_{receiver}_{_ymd(day)}{split}_{kubun}.zip"


def zip_bytes(members: list[tuple[str, str]], day: date) -> bytes:
    """A deterministic ZIP (fixed timestamps and attributes) of (name, UTF-8 text) members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, text in members:
            info = zipfile.ZipInfo(name, date_time=(day.year, day.month, day.day, 9, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, text.encode("utf-8"))
    return buffer.getvalue()
