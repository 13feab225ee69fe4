"""Consent events (FHIR R4 Consent, Karte's model per domain_spec §5) and the rule that decides coverage.

Semantics (the audit report must use the same): for a patient, the Consent in force at instant t is the one with
the latest `dateTime` ≤ t (ties: the larger `id`). An access by facility F to kind K at t is covered iff that
Consent exists, has status `active` and `provision.type` `permit`, t lies in `provision.period` (start ≤ t, and
t < end when an end is given: half-open, as the warehouse's consent intervals), F is one of `provision.actor[].reference.identifier` (no actor = every facility),
and K is one of the `provision.code` codings (system urn:karte:information-kind). A withdrawal is a Consent with
status `inactive` and `provision.type` `deny`.
"""

import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipelines.fhir import systems as S
from pipelines.generate.common import concept, fhir_instant, new_uuid
from pipelines.generate.schedule import Visit

ALL_KINDS = tuple(S.INFORMATION_KINDS)


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    id: str
    when: datetime
    status: str  # active | inactive
    provision: str  # permit | deny
    start: datetime
    end: datetime | None
    actors: tuple[str, ...] | None  # grantee 医療機関番号; None = every facility
    kinds: tuple[str, ...] | None  # None only on withdrawals (deny everything)


def in_force(events: Sequence[ConsentEvent], when: datetime) -> ConsentEvent | None:
    ordered = sorted(events, key=lambda e: (e.when, e.id))
    i = bisect_right([e.when for e in ordered], when)
    return ordered[i - 1] if i else None


def covers(events: Sequence[ConsentEvent], facility: str, kind: str, when: datetime) -> bool:
    ev = in_force(events, when)
    if ev is None or ev.status != "active" or ev.provision != "permit":
        return False
    if when < ev.start or (ev.end is not None and when >= ev.end):
        return False
    if ev.actors is not None and facility not in ev.actors:
        return False
    return ev.kinds is None or kind in ev.kinds


def _subset(rng: random.Random) -> tuple[str, ...]:
    chosen = set(rng.sample(ALL_KINDS, k=rng.randint(3, 7)))
    return tuple(k for k in ALL_KINDS if k in chosen)


def make_consents(rng: random.Random, visits: list[Visit], facilities: list[str], end: datetime) -> list[ConsentEvent]:
    """The consent history of one patient, given their visits at connected facilities (time order)."""
    if not visits or rng.random() < 0.05:
        return []  # never consented
    first = visits[0].when
    if rng.random() < 0.08:  # consented earlier (another facility's reception, マイナポータル)
        grant_at = first - timedelta(days=rng.randint(2, 120), minutes=rng.randint(0, 600))
    else:
        grant_at = first - timedelta(minutes=rng.randint(1, 20))  # at the reception of the first visit
    kinds = ALL_KINDS if rng.random() < 0.65 else _subset(rng)
    actors = None
    if rng.random() < 0.2:
        actors = tuple(facilities)
        if len(actors) >= 2 and rng.random() < 0.15:
            actors = actors[:-1]
    period_end = grant_at + timedelta(days=rng.randint(365, 730)) if rng.random() < 0.1 else None
    events = [ConsentEvent(new_uuid(rng), grant_at, "active", "permit", grant_at, period_end, actors, kinds)]
    last = grant_at
    if rng.random() < 0.15 and end - last > timedelta(days=3):  # scope change
        when = last + timedelta(minutes=rng.randint(1440, int((end - last).total_seconds() // 60)))
        new_kinds = ALL_KINDS if kinds != ALL_KINDS else _subset(rng)
        new_actors = None if rng.random() < 0.7 else actors
        events.append(ConsentEvent(new_uuid(rng), when, "active", "permit", when, None, new_actors, new_kinds))
        last = when
    if rng.random() < 0.04 and end - last > timedelta(days=3):  # withdrawal
        when = last + timedelta(minutes=rng.randint(1440, int((end - last).total_seconds() // 60)))
        events.append(ConsentEvent(new_uuid(rng), when, "inactive", "deny", when, None, None, None))
    return events


def consent_resource(ev: ConsentEvent, insurance_id: str) -> dict:
    provision: dict = {"type": ev.provision, "period": {"start": fhir_instant(ev.start)}}
    if ev.end is not None:
        provision["period"]["end"] = fhir_instant(ev.end)
    if ev.actors is not None:
        provision["actor"] = [
            {"role": concept(S.V3_PARTICIPATION_TYPE, "IRCP", "information recipient"),
             "reference": {"identifier": {"system": S.INSTITUTION_NO, "value": inst}}}
            for inst in ev.actors
        ]
    if ev.kinds is not None:
        provision["code"] = [concept(S.INFORMATION_KIND_SYSTEM, k, S.INFORMATION_KINDS[k]) for k in ev.kinds]
    return {
        "resourceType": "Consent",
        "id": ev.id,
        "status": ev.status,
        "scope": concept(S.CONSENT_SCOPE, "patient-privacy", "Privacy Consent"),
        "category": [concept(S.LOINC, S.CONSENT_CATEGORY_CODE, "Patient Consent")],
        "patient": {"identifier": {"system": S.INSURANCE_MEMBER_ID, "value": insurance_id}},
        "dateTime": fhir_instant(ev.when),
        "policyRule": concept(S.V3_ACT_CODE, "OPTIN" if ev.status == "active" else "OPTOUT"),
        "provision": provision,
    }
