"""Document bundles: 診療情報提供書 (JP_Bundle_eReferral) and 退院時サマリー (JP_Bundle_eDischargeSummary) with
their JP_MedicationRequest_eCS entries (domain_spec §1.4 MedicationRequest, §1.6)."""

import base64
from datetime import date, timedelta

from pipelines.fhir import systems as S
from pipelines.generate import codes
from pipelines.generate.clinical import Ctx, allergy, condition, institution_ext, patient_entry
from pipelines.generate.common import coding, concept, fhir_instant, new_uuid, xhtml_div
from pipelines.generate.facilities import Doctor, Facility
from pipelines.generate.formulary import Disease, Drug, general_order_drugs, yj_drugs

#: ICD-10 -> code prefixes (薬効 + 成分) of drugs usually prescribed for it
DRUGS_FOR_ICD10 = {
    "I10": ["2171022F", "2149040F", "2149042F", "2149041F", "2144002F", "2171014G", "2171014M"],
    "E119": ["3962002F", "3961008F"], "E785": ["2189017F", "2189015F"], "E780": ["2189017F", "2189015F"],
    "E790": ["3943001F"], "G470": ["1129009F", "1124009F", "1124030F", "1190027F"], "K210": ["2329023F", "2325003F"],
    "K297": ["2329021F", "2325003F"], "K269": ["2325003F", "2329023F"], "M5456": ["1149019F", "1141007F"],
    "M179": ["1149019F", "1141007F"], "J069": ["2233002F", "1141007F"], "J189": ["6241013F"],
    "J304": ["4490023F", "4490025F"], "L509": ["4490023F"], "F03": ["1190012F"], "I209": ["3399007H"],
    "I639": ["3399008F", "3399007H"], "I500": ["2139005F"], "M8199": ["3219100F"], "K529": ["2316009F", "2316020F"],
    "J459": ["2233002F"], "B029": ["1149019F", "3136004F"], "K590": ["2316020F"],
}
SECTION_TITLES = {
    "920": "紹介元情報", "910": "紹介先情報", "300": "構造情報", "950": "紹介目的", "340": "傷病名・主訴",
    "360": "現病歴", "510": "アレルギー・不耐性反応", "430": "投薬指示", "322": "入院時詳細", "342": "入院時診断",
    "352": "主訴", "312": "入院理由", "362": "現病歴", "333": "入院中経過", "324": "退院時詳細", "344": "退院時診断",
    "444": "退院時投薬指示", "424": "退院時方針指示",
}


def pick_drugs(ctx: Ctx, diseases: list[Disease], n_max: int) -> list[Drug]:
    rng = ctx.rng
    generic, branded = general_order_drugs(), yj_drugs()
    chosen: list[Drug] = []
    for d in diseases:
        for prefix in DRUGS_FOR_ICD10.get(d.icd10, []):
            if rng.random() < 0.5:
                continue
            pool = [x for x in (branded if rng.random() < 0.3 else generic) if x.code.startswith(prefix)] or [
                x for x in generic + branded if x.code.startswith(prefix)]
            if pool:
                chosen.append(rng.choice(pool))
                break
    while len(chosen) < 1 or (len(chosen) < n_max and rng.random() < 0.3):
        chosen.append(rng.choice(generic if rng.random() < 0.75 else branded))
    unique = {d.code: d for d in chosen}
    return list(unique.values())[:n_max]


def medication_request(ctx: Ctx, drug: Drug, rp: int, category: str, start: date, days: int) -> dict:
    rng = ctx.rng
    usage = rng.choice(codes.USAGE_BY_THERAPEUTIC_CLASS.get(drug.therapeutic_class, [codes.DEFAULT_USAGE]))
    usage_display, times = codes.JAMI_USAGES[usage]
    dose = 2 if rng.random() < 0.1 else 1
    unit_code, unit_display = drug.unit
    usage_text = usage_display.removeprefix("内服・経口・")
    category_display = {"OHP": "外来処方", "DCG": "退院処方"}[category]
    rid = ctx.counters.resource_id(ctx.fac.inst, "MedicationRequest")
    return {
        "resourceType": "MedicationRequest",
        "meta": {"lastUpdated": ctx.ts, "profile": [ctx.profile("MedicationRequest")]},
        "extension": [institution_ext(ctx.fac.inst)],
        "identifier": [
            {"system": S.RP_GROUP_NUMBER, "value": str(rp)},
            {"system": S.RP_ADMINISTRATION_INDEX, "value": "1"},
            {"system": S.RESOURCE_INSTANCE_ID, "value": rid},
        ],
        "contained": [{
            "resourceType": "Practitioner", "id": "prescriber", "meta": {"profile": [S.JP_PRACTITIONER]},
            "identifier": [{"system": f"{S.PRACTITIONER_ID_PREFIX}{ctx.fac.inst}", "value": ctx.doctor.local_id}],
            "name": [{"extension": [{"url": S.EXT_EN_REPRESENTATION, "valueCode": "IDE"}], "text": ctx.doctor.text}],
        }],
        "status": "completed",
        "intent": "order",
        "category": [concept(S.MEDICATION_CATEGORY_MERIT9, category, category_display)],
        "medicationCodeableConcept": {
            "coding": [coding(S.YJ_CODE if drug.is_yj else S.GENERAL_ORDER_CODE, drug.code, drug.display)],
            "text": drug.display,
        },
        "subject": ctx.subject(),
        "authoredOn": fhir_instant(ctx.when),
        "requester": {"reference": "#prescriber", "display": ctx.doctor.text},
        "dosageInstruction": [{
            "extension": [{"url": S.EXT_PERIOD_OF_USE, "valuePeriod": {"start": start.isoformat()}}],
            "text": f"{usage_text} １回{dose}{unit_display} {days}日分",
            "timing": {
                "repeat": {"boundsDuration": {"value": days, "unit": "日", "system": S.UCUM, "code": "d"},
                           "frequency": times, "period": 1, "periodUnit": "d"},
                "code": {"coding": [coding(S.JAMI_USAGE, usage, usage_display)], "text": usage_text},
            },
            "route": concept(S.ROUTE_CODES, "PO", "口", "経口"),
            "method": concept(S.JAMI_METHOD_BASIC_USAGE, "1", "内服"),
            "doseAndRate": [{
                "type": concept(S.MEDICATION_STRENGTH_TYPE, "1", "製剤量"),
                "doseQuantity": {"value": dose, "unit": unit_display, "system": S.MERIT9_UNIT, "code": unit_code},
            }],
        }],
        "dispenseRequest": {
            "quantity": {"value": dose * times * days, "unit": unit_display, "system": S.MERIT9_UNIT,
                         "code": unit_code},
            "expectedSupplyDuration": {"value": days, "unit": "日", "system": S.UCUM, "code": "d"},
        },
    }


def _practitioner(doctor: Doctor, inst: str, ts: str) -> dict:
    return {
        "resourceType": "Practitioner", "meta": {"lastUpdated": ts, "profile": [S.PRACTITIONER_ECS]},
        "identifier": [{"system": f"{S.PRACTITIONER_ID_PREFIX}{inst}", "value": doctor.local_id}],
        "name": [
            {"extension": [{"url": S.EXT_EN_REPRESENTATION, "valueCode": "IDE"}], "use": "official",
             "text": doctor.text, "family": doctor.family, "given": [doctor.given]},
            {"extension": [{"url": S.EXT_EN_REPRESENTATION, "valueCode": "SYL"}], "use": "official",
             "text": doctor.kana, "family": doctor.family_kana, "given": [doctor.given_kana]},
        ],
    }


def _organization(f: Facility, ts: str) -> dict:
    return {
        "resourceType": "Organization", "meta": {"lastUpdated": ts, "profile": [S.ORGANIZATION_ECS]},
        "identifier": [{"system": S.INSTITUTION_NO, "value": f.inst}],
        "type": [concept(S.ORGANIZATION_TYPE, "prov", "Healthcare Provider")],
        "name": f.name,
        "telecom": [{"system": "phone", "value": f.phone}],
        "address": [{"text": f.address, "country": "JP"}],
    }


def _section(code: str, text: str, entries: list[tuple[str, str]] | None = None,
             sub: list[dict] | None = None) -> dict:
    s: dict = {"title": SECTION_TITLES[code],
               "code": concept(S.DOC_SECTION_CS, code, f"{SECTION_TITLES[code]}セクション")}
    s["text"] = xhtml_div(text)
    if entries:
        s["entry"] = [{"reference": url, "type": rtype} for url, rtype in entries]
    if sub:
        s["section"] = sub
    return s


def _composition(ctx: Ctx, doc_type: tuple[str, str], category: tuple[str, str], title: str, profile: str,
                 enc_url: str, author_urls: list[str], org_url: str, sections: list[dict], event_text: str) -> dict:
    return {
        "resourceType": "Composition",
        "meta": {"lastUpdated": ctx.ts, "profile": [profile + ctx.suffix]},
        "extension": [{"url": S.EXT_COMPOSITION_VERSION, "valueString": "1.0"}],
        "identifier": {"system": S.RESOURCE_INSTANCE_ID,
                       "value": ctx.counters.resource_id(ctx.fac.inst, "Composition")},
        "status": "final",
        "type": concept(S.DOC_TYPECODES, *doc_type),
        "category": [concept(S.DOC_SUBTYPECODES, *category)],
        "subject": {"reference": ctx.patient_url, "type": "Patient"},
        "encounter": {"reference": enc_url, "type": "Encounter"},
        "date": ctx.ts,
        "author": [{"reference": u} for u in author_urls],
        "title": title,
        "custodian": {"reference": org_url, "type": "Organization"},
        "event": [{"code": [{"text": event_text}], "period": {"start": ctx.day.isoformat()}}],
        "section": sections,
    }


def _encounter(ctx: Ctx, inpatient: bool, admitted: date | None = None, reason: str | None = None) -> dict:
    res = {
        "resourceType": "Encounter", "meta": {"lastUpdated": ctx.ts, "profile": [S.ENCOUNTER_ECS]},
        "identifier": [{"system": S.RESOURCE_INSTANCE_ID,
                        "value": ctx.counters.resource_id(ctx.fac.inst, "Encounter")}],
        "status": "finished",
        "class": coding(S.V3_ACT_CODE, "IMP", "入院") if inpatient else coding(S.V3_ACT_CODE, "AMB", "外来"),
        "period": {"start": (admitted or ctx.day).isoformat()},
    }
    if inpatient:
        res["period"]["end"] = ctx.day.isoformat()
        res["hospitalization"] = {"dischargeDisposition": concept(S.DISCHARGE_DISPOSITION, "1", "治癒・軽快")}
    if reason:
        res["reasonCode"] = [{"text": reason}]
    return res


def referral_bundle(ctx: Ctx, target: Facility, diseases: list[Disease]) -> dict:
    """診療情報提供書 from ctx.fac to `target`: Composition, Patient, Encounter, Practitioner, 2 Organizations,
    Conditions (340), AllergyIntolerances (510), MedicationRequests (430)."""
    rng = ctx.rng
    u = {k: f"urn:uuid:{new_uuid(rng)}" for k in ("comp", "enc", "prac", "org", "dst")}
    conds = [condition(ctx, d, primary=i == 0) for i, d in enumerate(diseases)]
    allergies = [allergy(ctx, a) for a in ctx.patient.allergies]
    drugs = pick_drugs(ctx, diseases + ctx.patient.chronic, 5)
    days = rng.choice([14, 28, 30, 56])
    meds = [medication_request(ctx, d, i + 1, "OHP", ctx.day, days) for i, d in enumerate(drugs)]
    cond_urls = [f"urn:uuid:{new_uuid(rng)}" for _ in conds]
    alg_urls = [f"urn:uuid:{new_uuid(rng)}" for _ in allergies]
    med_urls = [f"urn:uuid:{new_uuid(rng)}" for _ in meds]
    names = "、".join(d.display for d in diseases)
    sections = [
        _section("920", ctx.fac.name, [(u["org"], "Organization"), (u["prac"], "Practitioner")]),
        _section("910", target.name, [(u["dst"], "Organization")]),
        _section("300", "構造情報", sub=[
            _section("950", f"{names}について精査加療をお願いいたします。", [(u["enc"], "Encounter")]),
            _section("340", names, [(x, "Condition") for x in cond_urls]),
            _section("360", f"{names}にて当院通院中。"),
            _section("510", "、".join(a[3] for a in ctx.patient.allergies) or "特記事項なし",
                     [(x, "AllergyIntolerance") for x in alg_urls]),
            _section("430", "、".join(d.display for d in drugs), [(x, "MedicationRequest") for x in med_urls]),
        ]),
    ]
    comp = _composition(ctx, ("57133-1", "診療情報提供書"), ("OUTPATIENT", "外来文書"), "診療情報提供書",
                        S.COMPOSITION_EREFERRAL, u["enc"], [u["prac"], u["org"]], u["org"], sections,
                        "診療情報提供書発行")
    entries = [(u["comp"], comp), (ctx.patient_url, patient_entry(ctx)),
               (u["enc"], _encounter(ctx, False, reason="精査加療のご依頼")),
               (u["prac"], _practitioner(ctx.doctor, ctx.fac.inst, ctx.ts)),
               (u["org"], _organization(ctx.fac, ctx.ts)), (u["dst"], _organization(target, ctx.ts))]
    entries += list(zip(cond_urls, conds)) + list(zip(alg_urls, allergies)) + list(zip(med_urls, meds))
    return _document(ctx, S.BUNDLE_EREFERRAL, "referral", entries)


def discharge_bundle(ctx: Ctx, admitted: date, admission_dx: list[Disease], discharge_dx: list[Disease]) -> dict:
    """退院時サマリー: Composition (18842-5, DISCHARGE), Patient, inpatient Encounter, Practitioner, Organization,
    Conditions (342 入院時診断, 344 退院時診断), AllergyIntolerances (510), MedicationRequests (444), the
    入院中経過 DocumentReference (333)."""
    rng = ctx.rng
    u = {k: f"urn:uuid:{new_uuid(rng)}" for k in ("comp", "enc", "prac", "org", "doc")}
    adm = [condition(ctx, d, primary=i == 0) for i, d in enumerate(admission_dx)]
    dis = [condition(ctx, d, primary=i == 0) for i, d in enumerate(discharge_dx)]
    allergies = [allergy(ctx, a) for a in ctx.patient.allergies]
    drugs = pick_drugs(ctx, discharge_dx + ctx.patient.chronic, 5)
    days = rng.choice([7, 14, 28])
    meds = [medication_request(ctx, d, i + 1, "DCG", ctx.day + timedelta(days=1), days) for i, d in enumerate(drugs)]
    adm_urls = [f"urn:uuid:{new_uuid(rng)}" for _ in adm]
    dis_urls = [f"urn:uuid:{new_uuid(rng)}" for _ in dis]
    alg_urls = [f"urn:uuid:{new_uuid(rng)}" for _ in allergies]
    med_urls = [f"urn:uuid:{new_uuid(rng)}" for _ in meds]
    adm_names = "、".join(d.display for d in admission_dx)
    dis_names = "、".join(d.display for d in discharge_dx)
    course = f"{admitted:%Y年%m月%d日}入院。{adm_names}に対し加療し、{ctx.day:%Y年%m月%d日}軽快退院。"
    sections = [_section("300", "構造情報", sub=[
        _section("322", f"入院日 {admitted.isoformat()}", [(u["enc"], "Encounter")]),
        _section("342", adm_names, [(x, "Condition") for x in adm_urls]),
        _section("510", "、".join(a[3] for a in ctx.patient.allergies) or "特記事項なし",
                 [(x, "AllergyIntolerance") for x in alg_urls]),
        _section("352", adm_names),
        _section("312", f"{adm_names}の加療目的"),
        _section("362", f"{adm_names}にて入院となった。"),
        _section("333", course, [(u["doc"], "DocumentReference")]),
        _section("324", f"退院日 {ctx.day.isoformat()}　転帰 軽快", [(u["enc"], "Encounter")]),
        _section("344", dis_names, [(x, "Condition") for x in dis_urls]),
        _section("444", "、".join(d.display for d in drugs), [(x, "MedicationRequest") for x in med_urls]),
        _section("424", "外来にて経過観察。"),
    ])]
    comp = _composition(ctx, ("18842-5", "退院時サマリー"), ("DISCHARGE", "退院時サマリー"), "退院時サマリー",
                        S.COMPOSITION_EDISCHARGE, u["enc"], [u["prac"], u["org"]], u["org"], sections, "退院")
    docref = {
        "resourceType": "DocumentReference", "meta": {"lastUpdated": ctx.ts, "profile": [S.DOCUMENT_REFERENCE_ECS]},
        "status": "current", "type": concept(S.LOINC, "11506-3", "Progress note"),
        "subject": {"reference": ctx.patient_url}, "date": ctx.ts, "description": "入院中経過",
        "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "title": "入院中経過",
                                    "data": base64.b64encode(course.encode("utf-8")).decode("ascii")}}],
    }
    entries = [(u["comp"], comp), (ctx.patient_url, patient_entry(ctx)),
               (u["enc"], _encounter(ctx, True, admitted)), (u["prac"], _practitioner(ctx.doctor, ctx.fac.inst, ctx.ts)),
               (u["org"], _organization(ctx.fac, ctx.ts))]
    entries += list(zip(adm_urls, adm)) + list(zip(dis_urls, dis)) + list(zip(alg_urls, allergies))
    entries += list(zip(med_urls, meds)) + [(u["doc"], docref)]
    return _document(ctx, S.BUNDLE_EDISCHARGE, "discharge", entries)


def _document(ctx: Ctx, profile: str, kind: str, entries: list[tuple[str, dict]]) -> dict:
    return {
        "resourceType": "Bundle",
        "meta": {"lastUpdated": ctx.ts, "profile": [profile + ctx.suffix]},
        "type": "document",
        "identifier": {"system": S.BUNDLE_IDENTIFIER,
                       "value": ctx.counters.bundle_identifier(ctx.fac.inst, ctx.submit_at.year, kind)},
        "timestamp": ctx.ts,
        "entry": [{"fullUrl": url, "resource": r} for url, r in entries],
    }
