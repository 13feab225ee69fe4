"""Who visits which connected facility when, and what each visit sends to CLINS (the plan everything follows)."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pipelines.generate.common import at, random_day, rng_for, weighted_choice
from pipelines.generate.facilities import Facility
from pipelines.generate.patients import Patient


@dataclass(slots=True)
class Visit:
    when: datetime  # arrival at the facility
    submit_at: datetime  # when the facility's system sends this visit's bundles (same day)
    patient: int
    inst: str
    first: bool  # first visit of this patient at this facility
    condition: bool  # sends a Condition bundle
    allergy: bool  # sends an AllergyIntolerance bundle
    observation: bool  # sends an Observation bundle (lab results)
    infection: bool  # … including infection results
    referral_to: str | None  # sends a 診療情報提供書 addressed to this facility
    admitted_on: date | None  # sends a 退院時サマリー for a stay that started then


VISITS_EXTRA = {"hospital": ([0, 1, 2, 3], [35, 30, 20, 15]), "clinic": ([0, 1, 2, 3, 4], [25, 25, 20, 15, 15]),
                "dental": ([0, 1, 2], [50, 35, 15])}


def plan_visits(facilities: list[Facility], patients: list[Patient], seed: int, start: date,
                end: date) -> tuple[dict[str, list[Visit]], list[list[Visit]]]:
    """(visits per 医療機関番号 in time order, visits per patient in time order)."""
    rng = rng_for(seed, "visits")
    fac = {f.inst: f for f in facilities}
    by_fac: dict[str, list[Visit]] = {f.inst: [] for f in facilities}
    by_patient: list[list[Visit]] = []
    for p in patients:
        mine: list[Visit] = []
        for inst in p.facilities:
            f = fac[inst]
            first_day = f.first_active_day(start)
            if first_day is None or first_day > end:
                continue
            extra, weights = VISITS_EXTRA[f.ftype]
            days = sorted({random_day(rng, first_day, end) for _ in range(1 + weighted_choice(rng, extra, weights))})
            others = [fac[i] for i in p.facilities if i != inst and fac[i].ftype != "dental"]
            for k, day in enumerate(days):
                when = at(day, 9) + timedelta(minutes=rng.randint(0, 510))
                submit = min(when + timedelta(minutes=rng.randint(30, 480)), at(day, 23, 30))
                first = k == 0
                dental = f.ftype == "dental"
                observation = (not dental) and rng.random() < (0.8 if f.ftype == "hospital" and first else
                                                                0.65 if first else 0.7)
                referral_to = None
                if not dental and others and rng.random() < (0.03 if f.ftype == "hospital" else 0.07):
                    hospitals = [o for o in others if o.ftype == "hospital"]
                    referral_to = rng.choice(hospitals or others).inst
                admitted_on = None
                if f.ftype == "hospital" and rng.random() < 0.07:
                    admitted_on = day - timedelta(days=rng.randint(3, 21))
                mine.append(Visit(
                    when=when, submit_at=submit, patient=p.index, inst=inst, first=first,
                    condition=rng.random() < (0.92 if first else 0.3),
                    allergy=bool(p.allergies) and rng.random() < ((0.3 if dental else 0.6) if first else 0.03),
                    observation=observation,
                    infection=observation and rng.random() < (0.25 if f.ftype == "hospital" else 0.06),
                    referral_to=referral_to, admitted_on=admitted_on,
                ))
        mine.sort(key=lambda v: (v.when, v.inst))
        for v in mine:
            by_fac[v.inst].append(v)
        by_patient.append(mine)
    for visits in by_fac.values():
        visits.sort(key=lambda v: (v.submit_at, v.patient))
    return by_fac, by_patient


def visit_kinds(v: Visit, p: Patient) -> set[str]:
    """Karte information kinds (systems.INFORMATION_KINDS) this visit makes available in CLINS."""
    kinds: set[str] = set()
    if v.condition:
        kinds.add("condition")
    if v.allergy:
        kinds.update("drug-contraindication" if a[0] == "medication" else "allergy" for a in p.allergies)
    if v.observation:
        kinds.add("lab-result")
        if v.infection:
            kinds.add("infection")
    if v.referral_to:
        kinds.update(("referral", "prescription", "condition"))
    if v.admitted_on:
        kinds.update(("discharge-summary", "prescription", "condition"))
    return kinds

