"""Medical institutions: 医療機関番号, names, beds, CLINS connection dates, and the registry CSV."""

import csv
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from pipelines.generate import codes
from pipelines.generate.common import random_day, rng_for

REGISTRY_COLUMNS = ["institution_number", "facility_name", "prefecture_code", "facility_type", "bed_count",
                    "applied_on", "connected_on", "first_submission_on", "first_view_on"]
HOSPITAL_SHARE = 1 / 13  # hospital : other ≈ 1 : 12
DENTAL_SHARE = 3 / 13
CLINIC_SPECIALTIES = [("内科", ["01"]), ("内科・循環器内科", ["01", "08"]), ("整形外科", ["11"]), ("皮膚科", ["19"]),
                      ("眼科", ["26"]), ("耳鼻咽喉科", ["27"]), ("消化器内科", ["01", "06"]),
                      ("呼吸器・アレルギー科", ["05", "34"]), ("泌尿器科", ["20"])]
HOSPITAL_DEPARTMENTS = ["01", "05", "06", "08", "10", "11", "19", "20", "26", "27"]


@dataclass
class Doctor:
    family: str
    given: str
    family_kana: str
    given_kana: str
    local_id: str

    @property
    def text(self) -> str:
        return f"{self.family} {self.given}"

    @property
    def kana(self) -> str:
        return f"{self.family_kana} {self.given_kana}"


@dataclass
class Facility:
    inst: str  # 10-digit 医療機関番号
    name: str
    pref_code: str
    pref_name: str
    city: str
    address: str
    phone: str
    ftype: str  # hospital | clinic | dental
    beds: int | None
    applied_on: date | None
    connected_on: date | None
    departments: list[str]
    doctors: list[Doctor]
    weight: float  # how many patients it attracts
    # how this facility's system writes files ("vendor style")
    pretty_json: bool
    ndjson_batches: bool
    gzip_share: float  # share of its files it gzips
    profile_version_suffix: bool
    local_lab_codes: bool
    first_submission_on: date | None = None
    first_view_on: date | None = None
    patients: list[int] = field(default_factory=list)

    @property
    def connected(self) -> bool:
        return self.connected_on is not None

    def first_active_day(self, start: date) -> date | None:
        if self.connected_on is None:
            return None
        return max(start, self.connected_on + timedelta(days=1))


def _check_digit(digits: str) -> str:
    """検証番号: modulus 10, weights 2·1 from the rightmost digit, products split (Luhn), over the nine digits
    都道府県番号 + 点数表番号 + 郡市区番号 + 医療機関番号 (see pipelines/ingest/facility_registry.py for the evidence)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        product = int(ch) * (2 if i % 2 == 0 else 1)
        total += product // 10 + product % 10
    return str((10 - total % 10) % 10)


def institution_number(rng: random.Random, pref_code: str, dental: bool) -> str:
    body = f"{rng.randint(1, 60):02d}{rng.randint(1, 9999):04d}"
    first_nine = f"{pref_code}{'3' if dental else '1'}{body}"
    return f"{first_nine}{_check_digit(first_nine)}"


def _doctor(rng: random.Random, inst: str, n: int) -> Doctor:
    fam, fam_k = rng.choice(codes.FAMILY_NAMES)
    giv, giv_k = rng.choice(codes.MALE_GIVEN if rng.random() < 0.65 else codes.FEMALE_GIVEN)
    return Doctor(fam, giv, fam_k, giv_k, f"D{n:03d}")


def _allocate_prefectures(rng: random.Random, n: int) -> list[int]:
    """Prefecture index per facility: one per prefecture first when n ≥ 47, the rest by population."""
    weights = [p[3] for p in codes.PREFECTURES]
    base = list(range(len(codes.PREFECTURES))) if n >= len(codes.PREFECTURES) else []
    extra = rng.choices(range(len(codes.PREFECTURES)), weights=weights, k=n - len(base))
    return base + extra


def make_facilities(n: int, seed: int, start: date, end: date) -> list[Facility]:
    rng = rng_for(seed, "facilities")
    pref_idx = _allocate_prefectures(rng, n)
    rng.shuffle(pref_idx)
    # type mix ≈ 1 hospital : 12 others (of which ~3 dental), at least one hospital when n ≥ 3
    n_hosp = max(1 if n >= 3 else 0, round(n * HOSPITAL_SHARE))
    n_dental = round(n * DENTAL_SHARE)
    types = ["hospital"] * n_hosp + ["dental"] * n_dental + ["clinic"] * (n - n_hosp - n_dental)
    # hospitals go to the most populous of the drawn prefectures
    order = sorted(range(n), key=lambda i: (-codes.PREFECTURES[pref_idx[i]][3], i))
    ftype_of = {}
    for i, t in zip(order[:n_hosp], types[:n_hosp]):
        ftype_of[i] = t
    rest = types[n_hosp:]
    rng.shuffle(rest)
    for i, t in zip(order[n_hosp:], rest):
        ftype_of[i] = t

    used_numbers: set[str] = set()
    used_names: set[str] = set()
    facilities = []
    for i in range(n):
        pref_code, pref_name, capital, _, area = codes.PREFECTURES[pref_idx[i]]
        city = rng.choice([capital, *codes.EXTRA_CITIES.get(pref_code, [])])
        ftype = ftype_of[i]
        while True:
            inst = institution_number(rng, pref_code, ftype == "dental")
            if inst not in used_numbers:
                used_numbers.add(inst)
                break
        name, departments, beds = _name_and_departments(rng, ftype, city)
        if name in used_names:
            name = f"{city}{name}"
        k = 2
        base_name = name
        while name in used_names:
            name = f"{base_name}（{k}）"
            k += 1
        used_names.add(name)
        town = rng.choice(codes.TOWNS)
        address = f"{pref_name}{city}{town}{rng.randint(1, 5)}丁目{rng.randint(1, 30)}-{rng.randint(1, 20)}"
        mid = 10 - len(area) - 4
        phone = f"{area}-{rng.randint(10 ** (mid - 1), 10 ** mid - 1)}-{rng.randint(0, 9999):04d}"
        applied_on, connected_on = _connection_dates(rng, ftype, start, end)
        doctors = [_doctor(rng, inst, k + 1) for k in range(rng.randint(4, 12) if ftype == "hospital" else rng.randint(1, 3))]
        weight = {"hospital": 4.0 + (beds or 0) / 100, "clinic": 1.0, "dental": 0.5}[ftype]
        facilities.append(Facility(
            inst=inst, name=name, pref_code=pref_code, pref_name=pref_name, city=city, address=address, phone=phone,
            ftype=ftype, beds=beds, applied_on=applied_on, connected_on=connected_on, departments=departments,
            doctors=doctors, weight=weight, pretty_json=rng.random() < 0.25, ndjson_batches=rng.random() < 0.25,
            gzip_share=0.5 if rng.random() < 0.12 else 0.0, profile_version_suffix=rng.random() < 0.3,
            local_lab_codes=rng.random() < 0.6,
        ))
    return facilities


def _name_and_departments(rng: random.Random, ftype: str, city: str) -> tuple[str, list[str], int | None]:
    place = rng.choice(codes.PLACE_WORDS + [city.rstrip("市区")])
    family, _ = rng.choice(codes.FAMILY_NAMES)
    if ftype == "hospital":
        style = rng.random()
        if style < 0.3:
            name = f"{city.rstrip('市区')}市民病院" if city.endswith("市") else f"{place}総合病院"
        elif style < 0.55:
            name = f"{place}中央病院"
        elif style < 0.75:
            name = f"{family}記念病院"
        elif style < 0.9:
            name = f"{place}医療センター"
        else:
            name = f"{place}病院"
        band = rng.random()
        beds = rng.randint(40, 199) if band < 0.6 else rng.randint(200, 399) if band < 0.85 else rng.randint(400, 900)
        depts = sorted(rng.sample(HOSPITAL_DEPARTMENTS, k=rng.randint(5, len(HOSPITAL_DEPARTMENTS))))
        if "01" not in depts:
            depts.insert(0, "01")
        return name, depts, beds
    if ftype == "dental":
        style = rng.random()
        name = f"{family}歯科医院" if style < 0.5 else f"{place}デンタルクリニック" if style < 0.8 else f"{place}歯科クリニック"
        return name, ["40"], None
    specialty, depts = rng.choice(CLINIC_SPECIALTIES)
    style = rng.random()
    if style < 0.5:
        name = f"{family}{specialty}クリニック"
    elif style < 0.8:
        name = f"{place}{specialty}医院"
    else:
        name = f"{place}ファミリークリニック"
        depts = ["01"]
    beds = rng.randint(1, 19) if rng.random() < 0.05 else None  # 有床診療所
    return name, list(depts), beds


def _connection_dates(rng: random.Random, ftype: str, start: date, end: date) -> tuple[date | None, date | None]:
    if rng.random() < 0.08:
        return None, None  # not applied
    applied_on = random_day(rng, start - timedelta(days=240), end - timedelta(days=120))
    p_connect = {"hospital": 0.92, "clinic": 0.75, "dental": 0.6}[ftype]
    if rng.random() >= p_connect:
        return applied_on, None
    connected_on = applied_on + timedelta(days=rng.randint(20, 200))
    if connected_on > end - timedelta(days=14):
        return applied_on, None
    return applied_on, connected_on


def write_registry(path: Path, facilities: list[Facility]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(REGISTRY_COLUMNS)
        for f in facilities:
            w.writerow([f.inst, f.name, f.pref_code, f.ftype, "" if f.beds is None else f.beds,
                        _iso(f.applied_on), _iso(f.connected_on), _iso(f.first_submission_on), _iso(f.first_view_on)])


def _iso(d: date | None) -> str:
    return d.isoformat() if d else ""
