"""A checkup as an eCheckupReport FHIR document (JP_Bundle_eCheckupGeneral), shaped like the official sample
Bundle-eCheckupReport-Sample-01: Composition, Patient, Practitioner, 健診機関 Organization, Encounter, 受診券 and
insurance Coverages with the insurer Organization, and one Observation per item (an item carried under
another, such as 具体的な既往歴, is a component of its parent).

Two variants: `clins` (the CLINS profile; the Patient carries JP_Insurance_memberID and the bundle a CLINS
bundle-identifier) and `generic` (the eCheckup profile; the Patient has only the institution's local id and
the insured person is known through the Coverage extensions and the insurer's 保険者番号).
"""

import random

from pipelines.checkups import codes as K
from pipelines.fhir import systems as S
from pipelines.generate.checkup_plan import Checkup
from pipelines.generate.checkup_values import ItemValue
from pipelines.generate.common import at, coding, concept, fhir_instant, new_uuid
from pipelines.generate.patients import patient_resource

INSURER_NAMES = {"01": "全国健康保険協会", "06": "健康保険組合", "31": "共済組合", "32": "共済組合", "33": "共済組合",
                 "34": "共済組合", "00": "国民健康保険", "39": "後期高齢者医療広域連合"}
PROGRAM_CATEGORY = {"010": (K.REPORT_CATEGORY_OID, "10", "特定健診"), "030": (None, "41", "事業者健診")}
SECTIONS = {"010": ("01011", "01012"), "030": ("01031", "01032")}


def category_of(code: str) -> str:
    """JP_SimpleObservationCategory_CS code of an item (as the official sample assigns them)."""
    if code.startswith(("9N001", "9N006", "9N011", "9N016", "9N021")):
        return "body-measurement"
    if code.startswith(("9A7", "9N121")):
        return "vital-signs"
    if code.startswith(("9N501", "9N506")):
        return "survey"
    if code.startswith(("9N7", "9N8")):
        return "social-history"
    if code.startswith("9") and code != "9N141000000000011":
        return "exam"
    return "laboratory"


def is_questionnaire(code: str) -> bool:
    return code.startswith(("9N7", "9N8"))


def value_element(item: ItemValue) -> dict:
    if item.value_type == "PQ":
        number = int(item.number) if item.number == int(item.number) else item.number
        return {"valueQuantity": {"value": number, "unit": item.unit, "system": S.UCUM, "code": item.unit}}
    if item.value_type in ("CD", "CO"):
        c = coding(item.choice_table, item.choice, item.display)
        if item.value_type == "CO":
            c = {"extension": [{"url": K.EXT_ORDINAL_VALUE, "valueDecimal": int(item.choice)}], **c}
        return {"valueCodeableConcept": {"coding": [c]}}
    return {"valueString": item.text}


def observation(item: ItemValue, children: list[ItemValue], patient_url: str, day: str, ts: str) -> dict:
    obs = {
        "resourceType": "Observation",
        "meta": {"lastUpdated": ts, "profile": [K.OBSERVATION_PROFILE]},
        "status": "final",
        "category": [concept(S.OBSERVATION_CATEGORY_CS, category_of(item.code))],
        "code": {"coding": [coding(K.ITEM_SYSTEM, item.code, item.name)]},
        "subject": {"reference": patient_url},
        "effectiveDateTime": day,
        **value_element(item),
    }
    if item.interpretation:
        obs["interpretation"] = [concept(S.OBSERVATION_INTERPRETATION, item.interpretation)]
    if children:
        obs["component"] = [{"code": {"coding": [coding(K.ITEM_SYSTEM, c.code, c.name)]}, **value_element(c)}
                            for c in children]
    return obs


def _patient(c: Checkup, ts: str) -> dict:
    p, inst = c.patient, c.facility.inst
    if c.variant == "clins":
        return patient_resource(p, inst, ts, S.PATIENT_ECS)
    res = patient_resource(p, inst, ts, S.PATIENT_ECS)
    res["identifier"] = [{"system": f"{K.CHECKUP_PATIENT_ID_PREFIX}{inst}",
                          "value": p.local_ids.get(inst, f"K{p.index + 1:08d}")}]
    return res


def _coverages(c: Checkup, patient_url: str, insurer_url: str, ts: str) -> list[dict]:
    p = c.patient
    insurance = {
        "resourceType": "Coverage", "meta": {"lastUpdated": ts, "profile": [K.COVERAGE_INSURANCE_PROFILE]},
        "extension": [{"url": url, "valueString": value}
                      for url, value in ((K.EXT_SYMBOL, p.symbol), (K.EXT_NUMBER, p.number),
                                         (K.EXT_SUBNUMBER, p.branch)) if value],
        "status": "active",
        "type": {"coding": [coding(K.INSURANCE_MAJOR_CATEGORY, "1")]},
        "beneficiary": {"reference": patient_url},
        "relationship": concept(K.INSURED_PERSON_CATEGORY, "1", "被保険者"),
        "payor": [{"reference": insurer_url}],
    }
    if c.program != "010":
        return [insurance]
    ticket = {
        "resourceType": "Coverage", "meta": {"lastUpdated": ts, "profile": [K.COVERAGE_SERVICE_PROFILE]},
        "status": "active",
        "type": {"coding": [coding(K.COVERAGE_SERVICE_TYPE, "1")]},
        "subscriberId": f"{c.fiscal_year % 100:02d}{c.patient.index + 1:09d}",
        "beneficiary": {"reference": patient_url},
        "period": {"start": f"{c.fiscal_year}-04-01", "end": f"{c.fiscal_year + 1}-03-31"},
        "payor": [{"reference": insurer_url}],
    }
    return [ticket, insurance]


def _organizations(c: Checkup, ts: str) -> tuple[dict, dict]:
    f, insurer = c.facility, c.patient.insurer
    examiner = {
        "resourceType": "Organization", "meta": {"lastUpdated": ts, "profile": [K.ORGANIZATION_PROFILE]},
        "identifier": [{"system": S.INSTITUTION_NO, "value": f.inst}],
        "type": [concept(S.ORGANIZATION_TYPE, "prov")], "name": f.name,
        "telecom": [{"system": "phone", "value": f.phone}], "address": [{"text": f.address, "country": "JP"}],
    }
    payer = {
        "resourceType": "Organization", "meta": {"lastUpdated": ts, "profile": [K.INSURER_PROFILE]},
        "identifier": [{"system": S.INSURER_NUMBER, "value": insurer}],
        "type": [concept(S.ORGANIZATION_TYPE, "ins")], "name": INSURER_NAMES.get(insurer[:2], "保険者"),
    }
    return examiner, payer


def _composition(c: Checkup, urls: dict[str, str], sections: list[dict], ts: str) -> dict:
    system, code, display = PROGRAM_CATEGORY[c.program]
    doc_type = "JPGCHKUP01" if c.variant == "clins" and c.patient.index % 2 else "53576-5"
    day = c.day.isoformat()
    return {
        "resourceType": "Composition",
        "meta": {"lastUpdated": ts, "profile": [K.COMPOSITION_PROFILE]},
        "language": "ja",
        "extension": [{"url": S.EXT_COMPOSITION_VERSION, "valueString": "1.0"}],
        "identifier": {"system": S.RESOURCE_INSTANCE_ID, "value": c.document_id},
        "status": "final",
        "type": concept(S.DOC_TYPECODES, doc_type, "検診・健診報告書"),
        "category": [concept(system or K.REPORT_CATEGORY_SYSTEM, code, display)],
        "subject": {"reference": urls["patient"]},
        "encounter": {"reference": urls["encounter"]},
        "date": ts,
        "author": [{"reference": urls["practitioner"]}, {"reference": urls["examiner"]}],
        "title": "特定健康診査結果報告書" if c.program == "010" else "健康診断結果報告書",
        "custodian": {"reference": urls["examiner"]},
        "event": [{"code": [concept(K.PROGRAM_SYSTEM, c.program, K.PROGRAM_NAMES[c.program])],
                   "period": {"start": day, "end": day}, "detail": [{"reference": urls["encounter"]}]}],
        "section": sections,
    }


def checkup_bundle(c: Checkup, rng: random.Random) -> dict:
    """The bundle for checkup `c` (its results as they stand: faults are applied to the results before)."""
    sent = at(c.sent_on, rng.randint(8, 19), rng.randint(0, 59))
    ts = fhir_instant(sent)
    urls = {k: f"urn:uuid:{new_uuid(rng)}"
            for k in ("composition", "patient", "practitioner", "examiner", "encounter", "insurer")}
    examiner, insurer = _organizations(c, ts)
    doctor = c.doctor
    practitioner = {
        "resourceType": "Practitioner", "meta": {"lastUpdated": ts, "profile": [K.PRACTITIONER_PROFILE]},
        "name": [{"extension": [{"url": S.EXT_EN_REPRESENTATION, "valueCode": "IDE"}], "text": doctor.text,
                  "family": doctor.family, "given": [doctor.given]},
                 {"extension": [{"url": S.EXT_EN_REPRESENTATION, "valueCode": "SYL"}], "text": doctor.kana,
                  "family": doctor.family_kana, "given": [doctor.given_kana]}],
    }
    encounter = {
        "resourceType": "Encounter", "meta": {"lastUpdated": ts, "profile": [K.ENCOUNTER_PROFILE]},
        "status": "finished", "class": coding(K.ENCOUNTER_CLASS_SYSTEM, "checkup", "健診"),
        "period": {"start": c.day.isoformat(), "end": c.day.isoformat()},
        "serviceProvider": {"reference": urls["examiner"]},
    }
    day = c.day.isoformat()
    items = c.results.items
    observations = []  # (url, resource, questionnaire?)
    for item in items:
        if item.parent is not None:
            continue
        children = [i for i in items if i.parent == item.code]
        observations.append((f"urn:uuid:{new_uuid(rng)}", observation(item, children, urls["patient"], day, ts),
                             is_questionnaire(item.code)))
    exam_code, questions_code = SECTIONS[c.program]
    sections = []
    for code, questionnaire in ((exam_code, False), (questions_code, True)):
        refs = [{"reference": url} for url, _, q in observations if q == questionnaire]
        if refs:
            sections.append({"title": K.SECTION_TITLES[code].removesuffix("セクション"),
                             "code": concept(K.SECTION_SYSTEM, code, K.SECTION_TITLES[code]),
                             "text": {"status": "generated",
                                      "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{len(refs)} 項目</div>'},
                             "entry": refs})
    coverages = _coverages(c, urls["patient"], urls["insurer"], ts)
    entries = [
        (urls["composition"], _composition(c, urls, sections, ts)),
        (urls["patient"], _patient(c, ts)),
        (urls["practitioner"], practitioner),
        (urls["examiner"], examiner),
        (urls["encounter"], encounter),
        *[(f"urn:uuid:{new_uuid(rng)}", cov) for cov in coverages],
        (urls["insurer"], insurer),
        *[(url, obs) for url, obs, _ in observations],
    ]
    clins = c.variant == "clins"
    return {
        "resourceType": "Bundle",
        "meta": {"lastUpdated": ts,
                 "profile": [S.BUNDLE_ECHECKUP_CLINS if clins else S.BUNDLE_ECHECKUP]},
        "identifier": {"system": S.BUNDLE_IDENTIFIER if clins else K.DOCUMENT_INSTANCE_ID,
                       "value": f"{c.facility.inst}^{c.sent_on.year}^{c.document_id}"},
        "type": "document",
        "timestamp": ts,
        "entry": [{"fullUrl": url, "resource": res} for url, res in entries],
    }
