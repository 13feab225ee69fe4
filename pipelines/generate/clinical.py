"""JP_Bundle_CLINS (collection) bundles and their JP_Condition_eCS / JP_AllergyIntolerance_eCS /
JP_Observation_LabResult_eCS entries, shaped like the IG examples (domain_spec §1.3, §1.4, §1.7)."""

import random
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from pipelines.fhir import jlac10
from pipelines.fhir import systems as S
from pipelines.generate import codes
from pipelines.generate.common import coding, concept, fhir_instant
from pipelines.generate.facilities import Doctor, Facility
from pipelines.generate.formulary import Disease
from pipelines.generate.patients import Patient, acute_diseases, dental_diseases, patient_resource

TAG_DISPLAY = {"LTS": "長期保存", "UNINFORMED": "未告知", "UNDELIVERED": "未提供"}
SPECIMEN_V2_DISPLAY = {"SER": "Serum", "PLAS": "Plasma", "BLD": "Whole blood", "UR": "Urine"}
ID_PREFIX = {"Condition": "C", "AllergyIntolerance": "A", "Observation": "O", "MedicationRequest": "M",
             "Composition": "D", "Encounter": "E"}
BUNDLE_PREFIX = {"Condition": "CND", "AllergyIntolerance": "ALG", "Observation": "OBS", "referral": "REF",
                 "discharge": "DIS"}


@dataclass
class Counters:
    """Per-facility serial numbers: resourceInstance ids and Bundle.identifier ids never repeat."""
    resource: dict[str, int] = field(default_factory=dict)
    bundle: dict[str, int] = field(default_factory=dict)

    def resource_id(self, inst: str, rtype: str) -> str:
        n = self.resource[inst] = self.resource.get(inst, 0) + 1
        return f"{inst}-{ID_PREFIX.get(rtype, 'R')}{n:08d}"

    def bundle_identifier(self, inst: str, year: int, kind: str) -> str:
        n = self.bundle[inst] = self.bundle.get(inst, 0) + 1
        return f"{inst}^{year}^{BUNDLE_PREFIX[kind]}-{n:07d}"


@dataclass
class Ctx:
    """Everything a builder needs about one submission of one facility for one patient."""
    seed: int
    fac: Facility
    patient: Patient
    when: datetime  # the visit
    submit_at: datetime
    rng: random.Random
    counters: Counters
    patient_url: str
    by_identifier: bool  # reference the Patient by its 被保険者個人識別子 instead of the fullUrl
    doctor: Doctor
    inpatient: bool = False  # contained Encounters are IMP (退院時サマリー) instead of AMB

    @property
    def ts(self) -> str:
        return fhir_instant(self.submit_at)

    @property
    def day(self) -> date:
        return self.when.date()

    @property
    def suffix(self) -> str:
        return "|1" if self.fac.profile_version_suffix else ""

    def profile(self, rtype: str) -> str:
        return S.ENTRY_PROFILES[rtype] + self.suffix

    def subject(self) -> dict:
        if self.by_identifier:
            return {"identifier": {"system": S.INSURANCE_MEMBER_ID, "value": self.patient.insurance_id},
                    "type": "Patient"}
        return {"reference": self.patient_url}


def institution_ext(inst: str) -> dict:
    return {"url": S.EXT_INSTITUTION_NUMBER, "valueIdentifier": {"system": S.INSTITUTION_NO, "value": inst}}


def department_ext(code: str) -> dict:
    name = codes.DEPARTMENTS.get(code, "内科")
    return {"url": S.EXT_DEPARTMENT, "valueCodeableConcept": concept(S.SSMIX_DEPARTMENT, code, name)}


def contained_encounter(ctx: Ctx) -> dict:
    return {
        "resourceType": "Encounter", "id": "encounter", "meta": {"profile": [S.JP_ENCOUNTER]},
        "identifier": [{"system": S.RESOURCE_INSTANCE_ID, "value": f"{ctx.fac.inst}-E{ctx.when:%Y%m%d}-"
                        f"{ctx.patient.local_ids.get(ctx.fac.inst, '0')}"}],
        "status": "finished",
        "class": coding(S.V3_ACT_CODE, "IMP", "入院") if ctx.inpatient else coding(S.V3_ACT_CODE, "AMB", "外来"),
        "period": {"start": fhir_instant(ctx.when)},
    }


def contained_practitioner(doctor: Doctor, inst: str, rid: str) -> dict:
    return {
        "resourceType": "Practitioner", "id": rid, "meta": {"profile": [S.JP_PRACTITIONER]},
        "identifier": [{"system": f"{S.PRACTITIONER_ID_PREFIX}{inst}", "value": doctor.local_id}],
        "name": [{"extension": [{"url": S.EXT_EN_REPRESENTATION, "valueCode": "IDE"}], "text": doctor.text,
                  "family": doctor.family, "given": [doctor.given]}],
    }


def patient_entry(ctx: Ctx) -> dict:
    return patient_resource(ctx.patient, ctx.fac.inst, ctx.ts, S.PATIENT_ECS)


def _tags(*codes_: str) -> list[dict]:
    return [coding(S.INDICATION_CS, c, TAG_DISPLAY[c]) for c in codes_]


# --- Condition -----------------------------------------------------------------------------------------------

def is_chronic(d: Disease) -> bool:
    return d.icd10.startswith(codes.CHRONIC_ICD10_PREFIXES)


def pick_conditions(ctx: Ctx, first_visit: bool) -> list[Disease]:
    """Diagnoses a facility records at a visit: its share of the problem list (first visit) and acute ones."""
    rng, p = ctx.rng, ctx.patient
    if ctx.fac.ftype == "dental":
        return rng.sample(dental_diseases(), k=rng.randint(1, 2))
    chosen: list[Disease] = []
    if first_visit:
        chosen += [d for d in p.chronic if rng.random() < 0.7]
    if not chosen or rng.random() < 0.5:
        chosen.append(rng.choice(acute_diseases()))
    unique = {d.code: d for d in chosen}
    return list(unique.values())[:4]


def condition(ctx: Ctx, d: Disease, primary: bool) -> dict:
    rng = ctx.rng
    chronic = is_chronic(d)
    suspected = (not chronic) and rng.random() < 0.12
    tags = []
    if rng.random() < (0.85 if chronic else 0.3):
        tags.append("LTS")
    r = rng.random()
    if r < 0.03:
        tags.append("UNINFORMED")
    elif r < 0.05:
        tags.append("UNDELIVERED")
    if chronic:
        onset = ctx.day - timedelta(days=rng.randint(30, 365 * 12))
        onset = max(onset, ctx.patient.birth_date + timedelta(days=365 * 15))
        clinical = "active"
    else:
        onset = ctx.day - timedelta(days=rng.randint(0, 30))
        clinical = "active" if suspected else rng.choices(["active", "resolved", "remission"], [75, 20, 5])[0]
    onset = min(max(onset, ctx.patient.birth_date), ctx.day)
    dept = codes.department_for_icd10(d.icd10)
    if dept not in ctx.fac.departments:
        dept = ctx.fac.departments[0]
    extensions = [institution_ext(ctx.fac.inst), department_ext(dept)]
    if primary:
        extensions.append({"url": S.EXT_DIAGNOSIS_TYPE,
                           "valueCodeableConcept": concept(S.DIAGNOSIS_TYPE_CS, "principal", "Principal Diagnosis")})
    res = {
        "resourceType": "Condition",
        "meta": {"lastUpdated": ctx.ts, "profile": [ctx.profile("Condition")]},
        "extension": extensions,
        "identifier": [{"system": S.RESOURCE_INSTANCE_ID,
                        "value": ctx.counters.resource_id(ctx.fac.inst, "Condition")}],
        "contained": [contained_encounter(ctx), contained_practitioner(ctx.doctor, ctx.fac.inst, "recorder")],
        "clinicalStatus": concept(S.CONDITION_CLINICAL, clinical, clinical.capitalize()),
        "verificationStatus": concept(S.CONDITION_VER_STATUS, "unconfirmed" if suspected else "confirmed",
                                      "Unconfirmed" if suspected else "Confirmed"),
        "category": [concept(S.CONDITION_CATEGORY, "encounter-diagnosis", "Encounter Diagnosis")],
        "code": {"coding": [coding(S.MEDIS_DISEASE, d.code, d.display), coding(S.ICD10, d.icd10, d.display)],
                 "text": f"{d.display}の疑い" if suspected else d.display},
        "subject": ctx.subject(),
        "encounter": {"reference": "#encounter"},
        "onsetDateTime": onset.isoformat(),
        "recordedDate": fhir_instant(ctx.when),
        "recorder": {"reference": "#recorder"},
    }
    if tags:
        res["meta"]["tag"] = _tags(*tags)
    if clinical == "resolved":
        res["abatementDateTime"] = ctx.day.isoformat()
    return res


# --- AllergyIntolerance --------------------------------------------------------------------------------------

def allergy(ctx: Ctx, a: tuple[str | None, str, str, str]) -> dict:
    category, system, code, display = a
    rng = ctx.rng
    res = {
        "resourceType": "AllergyIntolerance",
        "meta": {"lastUpdated": ctx.ts, "profile": [ctx.profile("AllergyIntolerance")]},
        "extension": [institution_ext(ctx.fac.inst), department_ext(ctx.fac.departments[0])],
        "identifier": [{"system": S.RESOURCE_INSTANCE_ID,
                        "value": ctx.counters.resource_id(ctx.fac.inst, "AllergyIntolerance")}],
        "contained": [contained_encounter(ctx)],
        "clinicalStatus": concept(S.ALLERGY_CLINICAL, "active", "Active"),
        "verificationStatus": concept(S.ALLERGY_VERIFICATION, "confirmed", "Confirmed"),
        "type": "allergy",
    }
    if category is not None:
        res["category"] = [category]
    res.update({
        "criticality": "high" if rng.random() < 0.25 else "low",
        "code": {"coding": [coding(system, code, display)], "text": display},
        "patient": ctx.subject(),
        "encounter": {"reference": "#encounter"},
        "recordedDate": fhir_instant(ctx.when),
        "reaction": [{"manifestation": [{"text": rng.choice(codes.ALLERGY_REACTIONS)}]}],
    })
    if rng.random() < 0.7:
        res["meta"]["tag"] = _tags("LTS")
    return res


# --- Observation ---------------------------------------------------------------------------------------------

def _stable(seed: int, *parts: object) -> float:
    """A per-patient / per-facility constant in [0, 1) that does not depend on generation order."""
    return zlib.crc32(":".join(map(str, (seed, *parts))).encode()) % 100000 / 100000


def _jlac10_code(ctx: Ctx, item: str, materials: tuple[str, ...], infection: bool) -> str:
    listed = (jlac10.INFECTION_LABO_CODES_BY_ITEM if infection else jlac10.CORE_LABO_CODES_BY_ITEM)[item]
    usable = [c for c in listed if c[9:12] in materials] or list(listed)
    # a facility's laboratory uses one method per item
    return usable[int(_stable(ctx.seed, ctx.fac.inst, item) * len(usable))]


def _specimen(material: str) -> dict:
    display, v2 = codes.SPECIMEN_MATERIALS.get(material, ("血清", "SER"))
    return {"resourceType": "Specimen", "id": "specimen", "meta": {"profile": [S.JP_SPECIMEN]},
            "type": {"coding": [coding(S.SPECIMEN_MATERIAL_CS, material if material in codes.SPECIMEN_MATERIALS
                                       else "023", display), coding(S.V2_SPECIMEN_TYPE, v2, SPECIMEN_V2_DISPLAY[v2])],
                     "text": display}}


def lab_items(ctx: Ctx) -> list[str]:
    rng, p = ctx.rng, ctx.patient
    panels = [codes.PANEL_BY_ICD10_PREFIX[d.icd10[:3]] for d in p.chronic if d.icd10[:3] in codes.PANEL_BY_ICD10_PREFIX]
    name = rng.choice(panels) if panels and rng.random() < 0.6 else "basic"
    items = codes.LAB_PANELS[name]
    k = max(3, round(len(items) * (rng.uniform(0.3, 0.6) if name == "basic" else rng.uniform(0.5, 1.0))))
    chosen = set(rng.sample(items, k=min(k, len(items))))
    return [i for i in items if i in chosen]


def _value(ctx: Ctx, item: str) -> float:
    _, lo, hi, decimals, _ = codes.LAB_SPECS[item]
    base = _stable(ctx.seed, "lab", ctx.patient.index, item)
    icds = {d.icd10[:3] for d in ctx.patient.chronic}
    if (item in ("HbA1c-NGSP", "BG") and "E11" in icds) or (item in ("Cre", "BUN", "Cys-C") and "N18" in icds) \
            or (item in ("LDL-C", "TG", "T-CHO") and "E78" in icds) or (item in ("BNP", "NT-proBNP") and "I50" in icds):
        base = 0.7 + base * 0.4
    elif item in ("CRP", "BNP", "NT-proBNP", "DD"):
        base = base ** 3  # mostly low
    else:
        base = 0.15 + base * 0.7
    x = lo + (hi - lo) * min(max(base + ctx.rng.gauss(0, 0.06), 0.0), 1.2)
    return round(x, decimals) if decimals else round(x)


def observation(ctx: Ctx, item: str, infection: bool = False) -> dict:
    rng = ctx.rng
    if infection:
        materials: tuple[str, ...] = ("023",)
        designation = jlac10.INFECTION_LABO_ITEMS[item]
        text = designation
    else:
        materials = codes.LAB_SPECS[item][4]
        designation = jlac10.CORE_LABO_ITEMS[item]
        text = codes.LAB_TEXT[item]
    code = _jlac10_code(ctx, item, materials, infection)
    codings = []
    if ctx.fac.local_lab_codes:
        codings.append(coding(S.LAB_LOCAL_CODE_CS, f"{int(_stable(ctx.seed, ctx.fac.inst, item) * 10 ** 8):08d}", text))
    if infection:
        codings.append(coding(S.INFECTION_LABO_CS, code, designation))
    else:
        codings.append(coding(S.CORE_LABO_CS, code, item))
    codings.append(coding(S.JLAC10_SYSTEMS[0], code, designation))
    effective = ctx.when + timedelta(minutes=rng.randint(5, 60))
    issued = min(effective + timedelta(minutes=rng.randint(30, 300)), ctx.submit_at - timedelta(minutes=1))
    issued = max(issued, effective)
    res = {
        "resourceType": "Observation",
        "meta": {"lastUpdated": ctx.ts, "profile": [ctx.profile("Observation")]},
        "extension": [institution_ext(ctx.fac.inst), department_ext(ctx.fac.departments[0])],
        "identifier": [{"system": S.RESOURCE_INSTANCE_ID,
                        "value": ctx.counters.resource_id(ctx.fac.inst, "Observation")}],
        "contained": [contained_encounter(ctx), _specimen(code[9:12])],
        "status": "final",
        "category": [concept(S.OBSERVATION_CATEGORY_CS, "laboratory", "Laboratory")],
        "code": {"coding": codings, "text": text},
        "subject": ctx.subject(),
        "encounter": {"reference": "#encounter"},
        "effectiveDateTime": fhir_instant(effective),
        "issued": fhir_instant(issued),
    }
    if rng.random() < 0.3:  # the IG example names the performer; most senders do not
        res["contained"].append(contained_practitioner(ctx.doctor, ctx.fac.inst, "performer"))
        res["performer"] = [{"reference": "#performer"}]
    res.update(_observation_value(ctx, item, infection))
    res["specimen"] = {"reference": "#specimen"}
    if rng.random() < 0.5:
        res["meta"]["tag"] = _tags("LTS")
    return res


def _observation_value(ctx: Ctx, item: str, infection: bool) -> dict:
    rng = ctx.rng
    if infection:
        kind, lo, hi, decimals = codes.INFECTION_SPECS[item]
        hepatitis = {d.icd10 for d in ctx.patient.chronic} & {"B181", "B182"}
        positive = rng.random() < 0.015 or ("B181" in hepatitis and item.startswith("HBs-AG")) or (
            "B182" in hepatitis and item.startswith("HCV"))
        if kind == "judge":
            label = "陽性" if positive else "陰性"
            if rng.random() < 0.5:
                return {"valueString": label}
            return {"valueCodeableConcept": concept(S.CHOICE_NEG_POS, "2" if positive else "1", label, label)}
        value = round(rng.uniform(hi * 2, hi * 40) if positive else rng.uniform(lo, hi), decimals)
        return {"valueQuantity": {"value": value, "unit": kind}}
    unit = codes.LAB_SPECS[item][0]
    if unit == "qual":
        code, display = codes.URINE_QUALITATIVE[min(int(rng.random() ** 3 * 5), 4)]
        return {"valueCodeableConcept": concept(S.CHOICE_URINE_QUALITATIVE, code, display, f"({display})")}
    if unit == "abo":
        return {"valueString": ctx.patient.blood_type}
    q: dict = {"value": _value(ctx, item)}
    if unit:
        q["unit"] = unit
    return {"valueQuantity": q}


# --- the transport bundle ------------------------------------------------------------------------------------

def clins_bundle(ctx: Ctx, rtype: str, resources: list[dict], entry_urls: list[str]) -> dict:
    """JP_Bundle_CLINS: collection, BundleResourceType tag, identifier 医療機関番号^西暦^ID, Patient first."""
    year = ctx.submit_at.year
    return {
        "resourceType": "Bundle",
        "meta": {"lastUpdated": ctx.ts, "profile": [S.BUNDLE_CLINS + ctx.suffix],
                 "tag": [coding(S.BUNDLE_RESOURCE_TYPE_CS, rtype)]},
        "type": "collection",
        "identifier": {"system": S.BUNDLE_IDENTIFIER, "value": ctx.counters.bundle_identifier(ctx.fac.inst, year, rtype)},
        "timestamp": ctx.ts,
        "entry": [{"fullUrl": ctx.patient_url, "resource": patient_entry(ctx)}]
        + [{"fullUrl": url, "resource": r} for url, r in zip(entry_urls, resources)],
    }
