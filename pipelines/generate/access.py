"""閲覧履歴: one FHIR R4 AuditEvent (IHE BALP PatientRead) per kind of information a staff member viewed.

A facility views a patient's shared record at a visit when CLINS already holds something for that patient.
Almost every view is covered by the patient's consent (see consent.covers); a small share is not — views before
any consent, after a withdrawal, of a kind outside the consented scope, or by a facility not named as grantee.
Who viewed: the facility (requesting system) and the staff member with their role (urn:karte:staff-role). A view
of 傷病名 often names the Condition resources shown (resourceInstance identifier + institution as assigner);
the service never shows UNDELIVERED ones, so only the audit's planted cases name one (audit_cases.py).
"""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from pipelines.fhir import systems as S
from pipelines.generate.common import coding, concept, fhir_instant, new_uuid
from pipelines.generate.consent import ConsentEvent, covers, in_force
from pipelines.generate.facilities import Facility
from pipelines.generate.patients import Patient
from pipelines.generate.schedule import Visit, visit_kinds
from pipelines.generate.staff import ROLES, Roster, Staff

SERVICE_NAME = "電子カルテ情報共有サービス"
#: FHIR resource type the viewed kind comes from (AuditEvent.entity.what.type)
KIND_RESOURCE_TYPE = {
    "condition": "Condition", "infection": "Observation", "lab-result": "Observation",
    "drug-contraindication": "AllergyIntolerance", "allergy": "AllergyIntolerance",
    "prescription": "MedicationRequest", "referral": "Composition", "discharge-summary": "Composition",
    "checkup": "Composition",
}
VIEW_PROBABILITY = 0.55
ETREAT_SHARE = 0.02
NAME_RESOURCES_SHARE = 0.5  # share of 傷病名 views whose log names the Conditions shown


@dataclass(frozen=True, slots=True)
class SharedCondition:
    """A Condition the warehouse will hold (its bundle was written without a fault), as a view may name it."""
    available_at: datetime  # when its bundle was sent
    inst: str
    resource_id: str
    undelivered: bool


@dataclass(slots=True)
class Access:
    id: str
    recorded: datetime
    patient: int  # Patient.index
    viewer: str  # 医療機関番号
    staff: Staff
    kind: str
    purpose: str  # TREAT | ETREAT
    resources: tuple[tuple[str, str], ...] = ()  # (医療機関番号, resourceInstance identifier) named by the log
    case: str | None = None  # the planted audit case this access belongs to (audit_cases.py), if any


def uncovered_reason(events: list[ConsentEvent], viewer: str, kind: str, when: datetime) -> str | None:
    """None when covered; else why not (the manifest's access_without_consent reasons)."""
    if covers(events, viewer, kind, when):
        return None
    ev = in_force(events, when)
    if ev is None:
        return "no-consent"
    if ev.status != "active" or ev.provision != "permit":
        return "withdrawn"
    if when < ev.start or (ev.end is not None and when >= ev.end):
        return "outside-period"
    if ev.actors is not None and viewer not in ev.actors:
        return "facility-not-granted"
    return "kind-not-granted"


def _named_conditions(rng: random.Random, shown: list[SharedCondition], when: datetime) -> tuple[tuple[str, str], ...]:
    available = [c for c in shown if c.available_at < when and not c.undelivered]
    if not available or rng.random() >= NAME_RESOURCES_SHARE:
        return ()
    picked = rng.sample(available, k=min(len(available), rng.randint(1, 3)))
    return tuple((c.inst, c.resource_id) for c in picked)


def make_accesses(rng: random.Random, patient: Patient, visits: list[Visit], consents: list[ConsentEvent],
                  rosters: dict[str, Roster], conditions: list[SharedCondition]) -> list[Access]:
    out: list[Access] = []
    for v in visits:
        available = set()
        for u in visits:
            if u.submit_at < v.when:
                available |= visit_kinds(u, patient)
        if not available or rng.random() >= VIEW_PROBABILITY:
            continue
        ev = in_force(consents, v.when)
        usable = ev is not None and ev.status == "active" and ev.provision == "permit" and (
            ev.end is None or v.when < ev.end)
        if not usable and rng.random() < 0.9:
            continue  # the reception checks consent first; only a few views slip through
        if usable and ev.actors is not None and v.inst not in ev.actors and rng.random() < 0.9:
            continue
        candidates = sorted(available)
        if usable and ev.kinds is not None:
            allowed = [k for k in candidates if k in ev.kinds]
            outside = [k for k in candidates if k not in ev.kinds]
            candidates = allowed
            if outside and rng.random() < 0.03:
                candidates = allowed + [rng.choice(outside)]
        if not candidates:
            continue
        kinds = rng.sample(candidates, k=min(len(candidates), rng.randint(1, 3)))
        purpose = "ETREAT" if rng.random() < ETREAT_SHARE else "TREAT"
        staff = rosters[v.inst].pick(rng)
        t = v.when + timedelta(minutes=rng.randint(2, 40))
        for kind in sorted(kinds):
            t += timedelta(seconds=rng.randint(5, 120))
            named = _named_conditions(rng, conditions, t) if kind == "condition" else ()
            out.append(Access(new_uuid(rng), t, patient.index, v.inst, staff, kind, purpose, named))
    return out


def _resource_entity(kind: str, inst: str, resource_id: str) -> dict:
    return {"what": {"type": KIND_RESOURCE_TYPE[kind],
                     "identifier": {"system": S.RESOURCE_INSTANCE_ID, "value": resource_id,
                                    "assigner": {"identifier": {"system": S.INSTITUTION_NO, "value": inst}}}},
            "type": coding(S.AUDIT_ENTITY_TYPE, "2", "System Object"),
            "role": coding(S.OBJECT_ROLE, "4", "Domain Resource")}


def audit_event(a: Access, patient: Patient, facility: Facility) -> dict:
    role_ja = ROLES[a.staff.role][0]
    return {
        "resourceType": "AuditEvent",
        "id": a.id,
        "meta": {"profile": [S.BALP_PATIENT_READ]},
        "type": coding(S.AUDIT_EVENT_TYPE, "rest", "Restful Operation"),
        "subtype": [coding(S.RESTFUL_INTERACTION, "read", "read")],
        "action": "R",
        "recorded": fhir_instant(a.recorded),
        "outcome": "0",
        "purposeOfEvent": [concept(S.V3_ACT_REASON, a.purpose, "treatment" if a.purpose == "TREAT" else
                                   "emergency treatment")],
        "agent": [
            {"type": concept(S.DICOM_DCM, "110153", "Source Role ID"),
             "who": {"identifier": {"system": S.INSTITUTION_NO, "value": facility.inst}, "display": facility.name},
             "requestor": True},
            {"type": concept(S.V3_PARTICIPATION_TYPE, "IRCP", "information recipient"),
             "role": [concept(S.STAFF_ROLE_SYSTEM, a.staff.role, role_ja)],
             "who": {"identifier": {"system": f"{S.PRACTITIONER_ID_PREFIX}{facility.inst}", "value": a.staff.staff_id},
                     "type": "Practitioner"},
             "requestor": True},
            {"type": concept(S.DICOM_DCM, "110152", "Destination Role ID"),
             "who": {"display": SERVICE_NAME}, "requestor": False},
        ],
        "source": {"observer": {"display": SERVICE_NAME}, "type": [coding(S.SECURITY_SOURCE_TYPE, "4",
                                                                           "Application Server")]},
        "entity": [
            {"what": {"identifier": {"system": S.INSURANCE_MEMBER_ID, "value": patient.insurance_id}},
             "type": coding(S.AUDIT_ENTITY_TYPE, "1", "Person"), "role": coding(S.OBJECT_ROLE, "1", "Patient")},
            {"what": {"type": KIND_RESOURCE_TYPE[a.kind], "display": S.INFORMATION_KINDS[a.kind]},
             "type": coding(S.AUDIT_ENTITY_TYPE, "2", "System Object"),
             "role": coding(S.OBJECT_ROLE, "4", "Domain Resource"),
             "detail": [{"type": S.AUDIT_DETAIL_INFORMATION_KIND, "valueString": a.kind}]},
            *(_resource_entity(a.kind, inst, rid) for inst, rid in a.resources),
        ],
    }
