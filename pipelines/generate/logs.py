"""The consent and access logs of a sample, and the audit truth that goes with them.

Runs after the FHIR bundles are written: a view may name the Conditions a facility sent, and the audit truth
needs to know what the warehouse will hold (holdings.py). Consent and access draw from their own seeded
streams, so this order changes nothing else in the sample.
"""

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from pipelines.generate.access import Access, audit_event, make_accesses, uncovered_reason
from pipelines.generate.audit_cases import AuditCases
from pipelines.generate.audit_truth import audit_truth
from pipelines.generate.common import JST, fhir_instant, rng_for
from pipelines.generate.consent import ConsentEvent, consent_resource, make_consents
from pipelines.generate.facilities import Facility
from pipelines.generate.holdings import Holdings
from pipelines.generate.patients import Patient
from pipelines.generate.schedule import Visit
from pipelines.generate.staff import make_roster
from pipelines.generate.validate import SelfCheck
from pipelines.generate.writer import MonthlyNdjson, dumps

CONSENT_SWAP_SHARE = 0.03  # neighbouring consent lines written out of order


@dataclass
class Logs:
    consents: int
    audit_events: int
    access_without_consent: list[dict]
    audit_truth: list[dict]
    audit_cases: dict[str, list[str]]
    audit_cases_unavailable: list[str]


def plan_consents(seed: int, patients: list[Patient], visits: list[list[Visit]], facilities: dict[str, Facility],
                  end: datetime) -> list[list[ConsentEvent]]:
    rng = rng_for(seed, "consent")
    return [make_consents(rng, v, [i for i in p.facilities if facilities[i].connected], end)
            for p, v in zip(patients, visits)]


def write_logs(out: Path, seed: int, patients: list[Patient], visits: list[list[Visit]],
               facilities: dict[str, Facility], consents: list[list[ConsentEvent]], holdings: Holdings,
               start: date, end: datetime, check: SelfCheck) -> Logs:
    holdings.finish()
    rosters = {inst: make_roster(seed, f) for inst, f in facilities.items()}
    cases = AuditCases(rng_for(seed, "audit-cases"), facilities, visits, consents, holdings, rosters, start, end)
    cases.plant_withdrawal()
    rng_access = rng_for(seed, "access")
    accesses: list[Access] = []
    for p, v in zip(patients, visits):
        accesses += make_accesses(rng_access, p, v, consents[p.index], rosters, holdings.conditions.get(p.index, []))
    accesses += cases.plant_accesses(accesses)

    consent_out = MonthlyNdjson(out, "consent", "consent")
    for p in patients:
        for ev in consents[p.index]:
            res = consent_resource(ev, p.insurance_id)
            check.resource(res)
            consent_out.add(f"{res['dateTime']}|{ev.id}", f"{ev.when:%Y%m}", dumps(res))
    consent_out.finalize(rng_for(seed, "consent-order"), CONSENT_SWAP_SHARE)

    audit_out = MonthlyNdjson(out, "access", "audit")
    uncovered: dict[str, dict] = {}
    for a in accesses:
        fac = facilities[a.viewer]
        res = audit_event(a, patients[a.patient], fac)
        check.resource(res)
        audit_out.add(f"{res['recorded']}|{a.id}", f"{a.recorded:%Y%m}", dumps(res))
        day = a.recorded.astimezone(JST).date()
        if fac.first_view_on is None or day < fac.first_view_on:
            fac.first_view_on = day
        reason = uncovered_reason(consents[a.patient], a.viewer, a.kind, a.recorded)
        if reason is not None:
            uncovered[a.id] = {"audit_event_id": a.id, "viewer": a.viewer, "kind": a.kind,
                               "purpose": a.purpose, "recorded": fhir_instant(a.recorded), "reason": reason}
    truth = audit_truth(accesses, consents, holdings, lambda inst: facilities[inst].ftype)
    positions = audit_out.finalize(watch=set(uncovered) | set(truth))

    without = sorted(({"file": positions[aid][0], "line": positions[aid][1], **info} for aid, info in uncovered.items()),
                     key=lambda r: (r["file"], r["line"]))
    case_of = {a.id: a.case for a in accesses}
    truth_rows = sorted(({"access_id": aid, "file": positions[aid][0], "line": positions[aid][1],
                          "case": case_of[aid], "findings": sorted(found), "evidence": found}
                         for aid, found in truth.items()), key=lambda r: (r["file"], r["line"]))
    return Logs(consent_out.count, audit_out.count, without, truth_rows, cases.planted, cases.unavailable)
