"""Who has a checkup, when, where, and in which form it is sent.

- 特定健診 (program 010): insured persons aged 40–74 at the end of the fiscal year (年度末年齢, as the programme
  counts them), at most once per fiscal year, with probability PARTICIPATION.
- 事業者健診 (program 030): employees (協会けんぽ, 健保組合, 共済) aged 18–39, with probability EMPLOYER_SHARE.
- The examining institution is a medical (not dental) facility — one the person already visits when there is
  one — so every 健診機関 is in the facility registry.
- Form: a facility connected to CLINS sends the report as an eCheckup FHIR bundle (after its connection day)
  with probability FHIR_SHARE, half CLINS variant and half generic (Coverage-identified); everything else goes
  to the insurer as 特定健診 XML in a ZIP archive.
"""

import random
from dataclasses import dataclass
from datetime import date, timedelta

from pipelines.checkups.codes import EMPLOYER_CHECKUP, SPECIFIC_CHECKUP
from pipelines.generate.checkup_values import Person, Results, make_results
from pipelines.generate.common import rng_for, weighted_choice
from pipelines.generate.facilities import Doctor, Facility
from pipelines.generate.patients import Patient

PARTICIPATION = 0.5
EMPLOYER_SHARE = 0.3
FHIR_SHARE = 0.5
EMPLOYEE_INSURERS = ("01", "06", "31", "32", "33", "34")


@dataclass
class Checkup:
    patient: Patient
    facility: Facility
    doctor: Doctor
    day: date  # 健診実施日
    sent_on: date
    program: str
    fiscal_year: int
    age: int  # 年度末年齢 (age on 31 March at the end of the fiscal year)
    document_id: str
    results: Results
    form: str  # fhir | xml
    variant: str | None  # clins | generic (FHIR only)

    @property
    def receiver(self) -> str:
        """The archive's 提出先: the person's insurer (保険者番号)."""
        return self.patient.insurer


def fiscal_year_end_age(birth: date, fiscal_year: int) -> int:
    """Age on 31 March of fiscal_year + 1: anyone born January–March has had that year's birthday by then."""
    return fiscal_year + 1 - birth.year - (0 if birth.month <= 3 else 1)


def person(p: Patient, age: int) -> Person:
    icd = {d.icd10 for d in p.chronic}
    return Person(sex=p.gender, age=age, hypertension="I10" in icd, diabetes="E119" in icd,
                  dyslipidemia="E785" in icd, ckd="N189" in icd, heart=bool(icd & {"I209", "I500", "I489"}),
                  history=tuple(d.display for d in p.chronic[:3]))


def _fiscal_years(d0: date, d1: date) -> list[int]:
    first = d0.year if d0.month >= 4 else d0.year - 1
    last = d1.year if d1.month >= 4 else d1.year - 1
    return list(range(first, last + 1))


def _examiner(rng: random.Random, p: Patient, medical: list[Facility], by_pref: dict[str, list[Facility]]) -> Facility:
    own = [f for f in medical if f.inst in p.facilities]
    if own and rng.random() < 0.6:
        return rng.choice(own)
    local = by_pref.get(p.pref_code) or medical
    return weighted_choice(rng, local, [f.weight for f in local])


def plan_checkups(seed: int, patients: list[Patient], facilities: list[Facility], d0: date, d1: date) -> list[Checkup]:
    """Every checkup of the sample, ordered by the day it is sent."""
    medical = [f for f in facilities if f.ftype != "dental"]
    if not medical:
        return []
    by_pref: dict[str, list[Facility]] = {}
    for f in medical:
        by_pref.setdefault(f.pref_code, []).append(f)
    numbers: dict[str, int] = {}
    checkups = []
    for p in patients:
        rng = rng_for(seed, "checkups", p.index)
        employee = p.insurer.startswith(EMPLOYEE_INSURERS)
        for fy in _fiscal_years(d0, d1):
            age = fiscal_year_end_age(p.birth_date, fy)
            if 40 <= age <= 74 and rng.random() < PARTICIPATION:
                program = SPECIFIC_CHECKUP
            elif 18 <= age < 40 and employee and rng.random() < EMPLOYER_SHARE:
                program = EMPLOYER_CHECKUP
            else:
                continue
            first, last = max(d0, date(fy, 4, 1)), min(d1 - timedelta(days=7), date(fy + 1, 3, 31))
            if first > last:
                continue
            day = first + timedelta(days=rng.randint(0, (last - first).days))
            sent_on = min(day + timedelta(days=rng.randint(7, 30)), d1)
            fac = _examiner(rng, p, medical, by_pref)
            fhir = fac.connected_on is not None and sent_on > fac.connected_on and rng.random() < FHIR_SHARE
            variant = None
            if fhir:
                variant = "generic" if p.symbol and rng.random() < 0.5 else "clins"
            numbers[fac.inst] = numbers.get(fac.inst, 0) + 1
            checkups.append(Checkup(
                patient=p, facility=fac, doctor=rng.choice(fac.doctors), day=day, sent_on=sent_on, program=program,
                fiscal_year=fy, age=age, document_id=f"HC{day:%Y%m%d}-{numbers[fac.inst]:05d}",
                results=make_results(rng, person(p, age), program), form="fhir" if fhir else "xml", variant=variant))
    checkups.sort(key=lambda c: (c.sent_on, c.facility.inst, c.document_id))
    return checkups
