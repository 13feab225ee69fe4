"""Synthetic patients: 被保険者個人識別子, names, address, phone, the facilities they visit, a problem list.

Every patient is invented; `_truth/patients.csv` keeps the raw identifiers so tests can prove that none of them
leaks past pseudonymisation.
"""

import csv
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from pipelines.fhir import systems as S
from pipelines.generate import codes
from pipelines.generate.common import rng_for, to_full_width_digits, weighted_choice
from pipelines.generate.facilities import Facility
from pipelines.generate.formulary import Disease, diseases, general_order_drugs

REFERENCE_DAY = date(2025, 6, 1)  # ages are counted from here (no wall clock)
KANA_SYMBOLS = ["あいう", "かきく", "さしす", "たちつ", "なにぬ", "はひふ", "まみむ", "やゆよ", "らりる", "わをん"]
KANJI_SYMBOLS = ["千代田", "国保", "中央", "北", "南", "東", "西", "本所"]
CHRONIC = {  # ICD-10 -> probability for a patient aged ≥ 40 (halved below 40)
    "I10": 0.32, "E119": 0.14, "E785": 0.22, "E790": 0.08, "N189": 0.05, "I500": 0.03, "I489": 0.03, "I209": 0.04,
    "J459": 0.05, "J449": 0.03, "M8199": 0.06, "G470": 0.07, "F03": 0.02, "E039": 0.03, "K210": 0.06, "K760": 0.04,
    "B182": 0.01, "B181": 0.01, "J304": 0.08, "L209": 0.03, "N40": 0.04,
}
ACUTE = ["J069", "J189", "J111", "B029", "L509", "K297", "K529", "R101", "R104", "K590", "N309", "M5456", "M179",
         "H269", "H409", "S529", "K358", "K269", "C169", "C160", "D509", "F329", "K802", "E780", "I639"]
DENTAL = ["K029", "K053", "K051"]
MOBILE_PREFIXES = ("090", "080", "070")
PREF_NAMES = {p[0]: p[1] for p in codes.PREFECTURES}


@dataclass
class Patient:
    index: int
    key: str  # P000001: the truth-file key, never written into FHIR
    insurer: str
    symbol: str
    number: str
    branch: str
    family: str
    given: str
    family_kana: str
    given_kana: str
    gender: str
    birth_date: date
    pref_code: str
    city: str
    address: str
    postal_code: str
    phone: str
    facilities: list[str]  # 医療機関番号 in order of first visit preference
    local_ids: dict[str, str]
    chronic: list[Disease]
    allergies: list[tuple[str | None, str, str, str]]  # (category, system, code, display)
    blood_type: str
    lab_shift: dict[str, float] = field(default_factory=dict)

    @property
    def insurance_id(self) -> str:
        """保険者番号8桁:記号:番号:枝番 (JP_Insurance_memberID, R1013)."""
        return f"{self.insurer}:{self.symbol}:{self.number}:{self.branch}"

    @property
    def name_text(self) -> str:
        return f"{self.family} {self.given}"

    @property
    def kana_text(self) -> str:
        return f"{self.family_kana} {self.given_kana}"

    @property
    def age(self) -> int:
        return (REFERENCE_DAY - self.birth_date).days // 365


def _insurance(rng: random.Random, pref_code: str, age: int) -> tuple[str, str, str, str]:
    r = rng.random()
    if age >= 75:  # 後期高齢者医療: 39 + 都道府県 + ..., no 記号
        insurer, symbol = f"39{pref_code}{rng.randint(100, 999)}{rng.randint(0, 9)}", ""
    elif r < 0.45:  # 協会けんぽ: 01 + 都道府県 + ...; 記号 is numeric
        insurer = f"01{pref_code}{rng.randint(1, 999):03d}{rng.randint(0, 9)}"
        symbol = str(rng.randint(1, 99999999))
        if rng.random() < 0.3:
            symbol = to_full_width_digits(symbol)
    elif r < 0.70:  # 健保組合
        insurer = f"06{rng.randint(0, 999999):06d}"
        symbol = str(rng.randint(1, 9999))
    elif r < 0.95:  # 国民健康保険: 6-digit insurer number left-padded to 8
        insurer = f"00{pref_code}{rng.randint(1, 999):03d}{rng.randint(0, 9)}"
        s = rng.random()
        symbol = (rng.choice(KANA_SYMBOLS) if s < 0.35 else rng.choice(KANJI_SYMBOLS) if s < 0.55
                  else f"{rng.choice('あかさたなはまやらわ')}{to_full_width_digits(str(rng.randint(1, 99)))}" if s < 0.7
                  else str(rng.randint(1, 999)))
    else:  # 共済組合
        insurer = f"{rng.choice(['31', '32', '33', '34'])}{rng.randint(0, 999999):06d}"
        symbol = str(rng.randint(1, 999))
    number = str(rng.randint(1, 99999999) if rng.random() < 0.6 else rng.randint(1, 99999))
    if rng.random() < 0.3:
        number = to_full_width_digits(number.zfill(8) if rng.random() < 0.5 else number)
    branch = "" if rng.random() < 0.12 else f"{rng.choice([0, 0, 0, 1, 1, 2, 3]):02d}"
    return insurer, symbol, number, branch


def _birth_date(rng: random.Random) -> date:
    band = weighted_choice(rng, [(0, 14), (15, 39), (40, 64), (65, 74), (75, 95)], [8, 14, 30, 20, 28])
    age_days = rng.randint(band[0] * 365, band[1] * 365 + 364)
    return REFERENCE_DAY - timedelta(days=age_days)


def _phone(rng: random.Random, area: str) -> str:
    if rng.random() < 0.4:
        return f"{rng.choice(MOBILE_PREFIXES)}-{rng.randint(1000, 9999)}-{rng.randint(0, 9999):04d}"
    mid = 10 - len(area) - 4
    return f"{area}-{rng.randint(10 ** (mid - 1), 10 ** mid - 1)}-{rng.randint(0, 9999):04d}"


def _allergies(rng: random.Random) -> list[tuple[str | None, str, str, str]]:
    if rng.random() >= 0.25:
        return []
    out = []
    for _ in range(1 if rng.random() < 0.8 else 2):
        r = rng.random()
        if r < 0.5:
            if rng.random() < 0.2:
                code, display = codes.DRUG_ALLERGEN_EXAMPLE
            else:
                drug = rng.choice(general_order_drugs())
                code, display = "GCM" + drug.code, drug.display.removeprefix("【般】")
            out.append(("medication", S.JFAGY_MEDICATION_GCM, code, display))
        elif r < 0.85:
            code, display = rng.choice(codes.FOOD_ALLERGENS)
            out.append(("food" if rng.random() < 0.93 else None, S.JFAGY_FOOD, code, display))
        else:
            code, display = rng.choice(codes.ENVIRONMENT_ALLERGENS)
            out.append(("environment" if rng.random() < 0.93 else None, S.JFAGY_NON_FOOD, code, display))
    unique = {(a[1], a[2]): a for a in out}
    return list(unique.values())


def disease_by_icd10() -> dict[str, Disease]:
    return {d.icd10: d for d in diseases()}


def make_patients(n: int, seed: int, facilities: list[Facility], truth_path: Path) -> list[Patient]:
    rng = rng_for(seed, "patients")
    by_icd = disease_by_icd10()
    pref_weights = [p[3] for p in codes.PREFECTURES]
    by_pref: dict[str, list[Facility]] = {}
    for f in facilities:
        by_pref.setdefault(f.pref_code, []).append(f)
    all_weights = [f.weight for f in facilities]
    local_counter = {f.inst: rng.randint(1000, 900000) for f in facilities}
    truth_path.parent.mkdir(parents=True, exist_ok=True)
    patients = []
    with open(truth_path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["patient_key", "insurance_id", "family", "given", "family_kana", "given_kana", "name_text",
                    "kana_text", "gender", "birth_date", "postal_code", "address", "phone", "local_ids"])
        for i in range(n):
            pref_code, pref_name, capital, _, area = weighted_choice(rng, codes.PREFECTURES, pref_weights)
            city = rng.choice([capital, *codes.EXTRA_CITIES.get(pref_code, [])])
            gender = "male" if rng.random() < 0.48 else "female"
            fam, fam_k = rng.choice(codes.FAMILY_NAMES)
            giv, giv_k = rng.choice(codes.MALE_GIVEN if gender == "male" else codes.FEMALE_GIVEN)
            birth = _birth_date(rng)
            age = (REFERENCE_DAY - birth).days // 365
            insurer, symbol, number, branch = _insurance(rng, pref_code, age)
            address = (f"{pref_name}{city}{rng.choice(codes.TOWNS)}{rng.randint(1, 6)}丁目"
                       f"{rng.randint(1, 40)}-{rng.randint(1, 30)}")
            postal = f"{rng.randint(1, 999):03d}-{rng.randint(0, 9999):04d}"
            # facilities: a first one near home, then 0–2 more (hospitals attract more patients)
            local = by_pref.get(pref_code) or facilities
            first = weighted_choice(rng, local, [f.weight for f in local])
            chosen = [first]
            for _ in range(weighted_choice(rng, [0, 1, 2], [50, 35, 15])):
                pool = local if rng.random() < 0.6 and len(local) > len(chosen) else facilities
                weights = [f.weight for f in pool] if pool is local else all_weights
                for _attempt in range(5):
                    f = weighted_choice(rng, pool, weights)
                    if f not in chosen:
                        chosen.append(f)
                        break
            local_ids = {}
            for f in chosen:
                local_counter[f.inst] += rng.randint(1, 40)
                local_ids[f.inst] = f"{local_counter[f.inst]:09d}"
                f.patients.append(i)
            chronic = [by_icd[c] for c, p in CHRONIC.items()
                       if c in by_icd and rng.random() < (p if age >= 40 else p / 2)]
            p = Patient(
                index=i, key=f"P{i + 1:06d}", insurer=insurer, symbol=symbol, number=number, branch=branch,
                family=fam, given=giv, family_kana=fam_k, given_kana=giv_k, gender=gender, birth_date=birth,
                pref_code=pref_code, city=city, address=address, postal_code=postal, phone=_phone(rng, area),
                facilities=[f.inst for f in chosen], local_ids=local_ids, chronic=chronic, allergies=_allergies(rng),
                blood_type=weighted_choice(rng, ["A", "O", "B", "AB"], [40, 30, 20, 10]),
            )
            patients.append(p)
            w.writerow([p.key, p.insurance_id, p.family, p.given, p.family_kana, p.given_kana, p.name_text,
                        p.kana_text, p.gender, p.birth_date.isoformat(), p.postal_code, p.address, p.phone,
                        ";".join(f"{k}:{v}" for k, v in local_ids.items())])
    return patients


def patient_resource(p: Patient, inst: str, last_updated: str, profile: str) -> dict:
    """JP_Patient_eCS: local ID (urn:oid:…51.1+医療機関番号), 被保険者個人識別子, kanji (IDE) and kana (SYL) names."""
    return {
        "resourceType": "Patient",
        "meta": {"lastUpdated": last_updated, "profile": [profile]},
        "identifier": [
            {"system": f"{S.LOCAL_PATIENT_ID_PREFIX}{inst}", "value": p.local_ids.get(inst, "0")},
            {"system": S.INSURANCE_MEMBER_ID, "value": p.insurance_id},
        ],
        "name": [
            {"extension": [{"url": S.EXT_EN_REPRESENTATION, "valueCode": "IDE"}], "text": p.name_text,
             "family": p.family, "given": [p.given]},
            {"extension": [{"url": S.EXT_EN_REPRESENTATION, "valueCode": "SYL"}], "text": p.kana_text,
             "family": p.family_kana, "given": [p.given_kana]},
        ],
        "telecom": [{"system": "phone", "value": p.phone, "use": "mobile" if p.phone[:3] in MOBILE_PREFIXES else "home"}],
        "gender": p.gender,
        "birthDate": p.birth_date.isoformat(),
        "address": [{"text": p.address, "postalCode": p.postal_code, "state": PREF_NAMES[p.pref_code],
                     "city": p.city}],
    }


def dental_diseases() -> list[Disease]:
    by_icd = disease_by_icd10()
    return [by_icd[c] for c in DENTAL if c in by_icd]


def acute_diseases() -> list[Disease]:
    by_icd = disease_by_icd10()
    return [by_icd[c] for c in ACUTE if c in by_icd]
