"""`generate()`: facilities → patients → visit plan → consent / access logs → FHIR files per facility → faults."""

import itertools
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson

from pipelines.fhir import systems as S
from pipelines.generate import faults as F
from pipelines.generate.checkups import write_checkups
from pipelines.generate.clinical import (
    Counters,
    Ctx,
    allergy,
    clins_bundle,
    condition,
    lab_items,
    observation,
    pick_conditions,
)
from pipelines.generate.codes import INFECTION_PANEL
from pipelines.generate.common import at, new_uuid, rng_for
from pipelines.generate.documents import discharge_bundle, referral_bundle
from pipelines.generate.facilities import Facility, make_facilities, write_registry
from pipelines.generate.holdings import Holdings
from pipelines.generate.logs import plan_consents, write_logs
from pipelines.generate.patients import Patient, make_patients
from pipelines.generate.schedule import Visit, plan_visits
from pipelines.generate.validate import SelfCheck
from pipelines.generate.writer import FhirFiles, dumps, gzip_bytes, prepare_out_dir

NDJSON_BATCH = 40  # bundles per .ndjson file at most
RANDOM_GZIP_SHARE = 0.03


@dataclass
class GenerateSummary:
    out_dir: str
    facilities: int
    connected_facilities: int
    patients: int
    files: int
    bundles: int
    resources: int
    resources_by_type: dict[str, int]
    consents: int
    audit_events: int
    access_without_consent: int
    faults: int
    fault_kinds: dict[str, int]
    validated_bundles: int = 0
    checkups: int = 0  # person × checkup, both forms (pipelines/generate/checkups.py)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.fault_kinds.items())) or "none"
        return (f"Generated {self.files} FHIR files holding {self.bundles} bundles and {self.resources} resources "
                f"({', '.join(f'{k} {v}' for k, v in sorted(self.resources_by_type.items()))}) for "
                f"{self.patients} patients at {self.connected_facilities} of {self.facilities} facilities, plus "
                f"{self.consents} consent events and {self.audit_events} access events "
                f"({self.access_without_consent} without covering consent) in {self.out_dir}. "
                f"Checkups: {self.checkups} (eCheckup bundles in fhir/, 特定健診 XML archives in checkups/). "
                f"Injected faults: {self.faults} ({kinds}). Self-check validated {self.validated_bundles} bundles "
                f"with fhir.resources R4B.")


@dataclass
class Item:
    bundle: dict
    patient: Patient
    kind: str  # Condition | AllergyIntolerance | Observation | referral | discharge | resend
    recipient: str | None = None  # 紹介先 医療機関番号 of a referral


@dataclass
class Resend:
    kind: str  # updated_resource | entered_in_error
    resource: dict  # a copy of the original resource
    patient: Patient
    due: date
    orig_file: str
    orig_line: int | None
    orig_bundle: str
    orig_submit: datetime


def _parse_day(value: str | date, name: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an ISO date (YYYY-MM-DD), got {value!r}") from None


def check_arguments(facilities: int, patients: int, fault_rate: float, start: str | date,
                    end: str | date) -> tuple[date, date]:
    if not isinstance(facilities, int) or facilities < 1:
        raise ValueError(f"facilities must be a positive integer, got {facilities!r}")
    if not isinstance(patients, int) or patients < 0:
        raise ValueError(f"patients must be a non-negative integer, got {patients!r}")
    if not isinstance(fault_rate, (int, float)) or not 0.0 <= float(fault_rate) <= 1.0:
        raise ValueError(f"fault_rate must be between 0 and 1, got {fault_rate!r}")
    d0, d1 = _parse_day(start, "start"), _parse_day(end, "end")
    if d0 > d1:
        raise ValueError(f"start {d0} is after end {d1}")
    if not (date(2020, 1, 1) <= d0 and d1 <= date(2039, 12, 31)):
        raise ValueError("start/end must lie in 2020–2039 (Bundle.identifier years are 20[2-3]x)")
    return d0, d1


class FhirWriter:
    """Builds and writes every facility's bundles; owns the fault planner and the counters."""

    def __init__(self, out: Path, seed: int, fault_rate: float, end: date, facilities: list[Facility],
                 patients: list[Patient], check: SelfCheck):
        self.out = out
        self.seed = seed
        self.end = end
        self.fac = {f.inst: f for f in facilities}
        self.facilities = facilities
        self.patients = patients
        self.files = FhirFiles(out)
        self.counters = Counters()
        self.planner = F.FaultPlanner(fault_rate, rng_for(seed, "faults"))
        self.check = check
        self.file_counts: Counter = Counter()
        self.bundle_counts: Counter = Counter()
        self.resource_counts: Counter = Counter()
        self.unforceable: list[str] = []
        self.holdings = Holdings()

    # --- building ------------------------------------------------------------------------------------------
    def ctx(self, fac: Facility, p: Patient, when: datetime, submit_at: datetime, rng: random.Random) -> Ctx:
        return Ctx(seed=self.seed, fac=fac, patient=p, when=when, submit_at=submit_at, rng=rng,
                   counters=self.counters, patient_url=f"urn:uuid:{new_uuid(rng)}",
                   by_identifier=rng.random() < 0.2, doctor=rng.choice(fac.doctors))

    def build_visit(self, fac: Facility, v: Visit, rng: random.Random) -> list[Item]:
        p = self.patients[v.patient]
        items = []
        if v.condition:
            c = self.ctx(fac, p, v.when, v.submit_at, rng)
            ds = pick_conditions(c, v.first)
            items.append(self._clins(c, "Condition", [condition(c, d, primary=i == 0) for i, d in enumerate(ds)]))
        if v.allergy:
            c = self.ctx(fac, p, v.when, v.submit_at, rng)
            items.append(self._clins(c, "AllergyIntolerance", [allergy(c, a) for a in p.allergies]))
        if v.observation:
            c = self.ctx(fac, p, v.when, v.submit_at, rng)
            res = [observation(c, item) for item in lab_items(c)]
            if v.infection:
                res += [observation(c, item, infection=True)
                        for item in rng.sample(INFECTION_PANEL, k=rng.randint(2, 5))]
            items.append(self._clins(c, "Observation", res))
        if v.referral_to:
            c = self.ctx(fac, p, v.when, v.submit_at, rng)
            c.by_identifier = False
            items.append(Item(referral_bundle(c, self.fac[v.referral_to], pick_conditions(c, True)), p, "referral",
                              v.referral_to))
        if v.admitted_on:
            c = self.ctx(fac, p, v.when, v.submit_at, rng)
            c.by_identifier, c.inpatient = False, True
            adm = pick_conditions(c, False)[:2]
            dis = adm + ([d] if (d := pick_conditions(c, False)[0]) not in adm and rng.random() < 0.3 else [])
            items.append(Item(discharge_bundle(c, v.admitted_on, adm, dis), p, "discharge"))
        return items

    def _clins(self, c: Ctx, rtype: str, resources: list[dict]) -> Item:
        urls = [f"urn:uuid:{new_uuid(c.rng)}" for _ in resources]
        return Item(clins_bundle(c, rtype, resources, urls), c.patient, rtype)

    # --- one facility ------------------------------------------------------------------------------------
    def process_facility(self, fac: Facility, visits: list[Visit]) -> None:
        rng = rng_for(self.seed, "fhir", fac.inst)
        pending: list[Resend] = []
        for day, day_visits in itertools.groupby(visits, key=lambda v: v.submit_at.date()):
            items = [item for v in day_visits for item in self.build_visit(fac, v, rng)]
            self.flush_resends(fac, pending, rng, day)
            if fac.ndjson_batches and len(items) >= 2:
                for i in range(0, len(items), NDJSON_BATCH):
                    self.write_group(fac, day, items[i:i + NDJSON_BATCH], True, rng, pending)
            else:
                for item in items:
                    self.write_group(fac, day, [item], False, rng, pending)
        self.flush_resends(fac, pending, rng, None)

    def write_group(self, fac: Facility, day: date, group: list[Item], nd: bool, rng: random.Random,
                    pending: list[Resend] | None, faults_allowed: bool = True) -> tuple[str, list[str]]:
        """Write one file holding `group`; returns (relpath, bundle identifiers)."""
        planner, frng = self.planner, self.planner.rng
        gz = rng.random() < fac.gzip_share + RANDOM_GZIP_SHARE
        ext = (".ndjson" if nd else ".json") + (".gz" if gz else "")
        rel = f"fhir/{self.files.next_name(fac.inst, day, ext)}"
        file_kind = planner.choose(F.FILE_KINDS_NDJSON if nd else F.FILE_KINDS_JSON) if faults_allowed else None
        line_kinds: dict[int, str] = {}
        identifiers = []
        fates: list[tuple[str | None, str | None]] = []  # per item: (fault kind, resource it hit)
        for idx, item in enumerate(group):
            b = item.bundle
            line = idx + 1 if nd else None
            bid = b["identifier"]["value"]
            identifiers.append(bid)
            kind = None
            if faults_allowed and file_kind is None:
                kind = planner.choose(F.applicable_bundle_kinds(b, nd))
            hit = None
            if kind is None:
                self.check.bundle(b)
            elif kind in F.LINE_KINDS:
                line_kinds[idx] = kind
            elif kind in F.BUNDLE_KINDS:
                detail = F.apply_bundle_fault(kind, b, frng)
                identifiers[-1] = b["identifier"]["value"]
                planner.record(kind, rel, line, b["identifier"]["value"], None, **detail)
            elif kind in F.RESEND_KINDS:
                self.check.bundle(b)
                res = F.target_for(kind, b, frng)
                hit = F.resource_id(res)
                due = min(day + timedelta(days=frng.randint(7, 60)), max(self.end, day))
                pending.append(Resend(kind, orjson.loads(orjson.dumps(res)), item.patient, due, rel, line, bid,
                                      datetime.fromisoformat(b["timestamp"])))
            else:
                res = F.target_for(kind, b, frng)
                detail = F.apply_resource_fault(kind, res, frng)
                hit = F.resource_id(res)
                planner.record(kind, rel, line, bid, hit, **detail)
            fates.append((kind, hit))
        # serialize (+ line / file faults on the text)
        if nd:
            lines = []
            for idx, item in enumerate(group):
                raw = dumps(item.bundle)
                if idx in line_kinds:
                    raw, detail = self._text_fault(line_kinds[idx], raw.decode("utf-8"), frng)
                    planner.record(line_kinds[idx], rel, idx + 1, identifiers[idx], None, **detail)
                lines.append(raw)
            data = b"\n".join(lines) + b"\n"
        else:
            data = dumps(group[0].bundle, pretty=fac.pretty_json)
        if file_kind in ("truncated_json", "malformed_json", "not_utf8"):
            data, detail = self._text_fault(file_kind, data.decode("utf-8"), frng)
            planner.record(file_kind, rel, None, None if nd else identifiers[0], None, **detail)
        self._hold(fac, group, fates, file_kind)
        payload = gzip_bytes(data) if gz else data
        self.files.write(rel.removeprefix("fhir/"), payload)
        self._count(rel, group)
        if fac.first_submission_on is None or day < fac.first_submission_on:
            fac.first_submission_on = day
        if file_kind == "resubmitted_file":
            copy = f"fhir/{self.files.next_name(fac.inst, day, ext)}"
            self.files.write(copy.removeprefix("fhir/"), payload)
            self.file_counts[_ext(copy)] += 1
            planner.record("resubmitted_file", copy, None, None if nd else identifiers[0], None, duplicate_of=rel)
        return rel, identifiers

    def _hold(self, fac: Facility, group: list[Item], fates: list[tuple[str | None, str | None]],
              file_kind: str | None) -> None:
        """Tell the holdings what of this file the warehouse will keep (see holdings.py)."""
        file_lost = file_kind in ("truncated_json", "malformed_json", "not_utf8")
        for item, (kind, hit) in zip(group, fates):
            lost = file_lost or kind in F.LINE_KINDS or kind in F.BUNDLE_KINDS
            excluded = {hit} if hit is not None and kind != "updated_resource" else set()
            self.holdings.record(item.bundle, item.patient.index, fac.inst, item.recipient, lost=lost,
                                 clean=kind is None and not file_lost, excluded=excluded)

    @staticmethod
    def _text_fault(kind: str, text: str, rng: random.Random) -> tuple[bytes, dict]:
        if kind == "truncated_json":
            cut = F.truncate(text, rng)
            return cut.encode("utf-8"), {"kept_chars": len(cut), "of_chars": len(text)}
        if kind == "malformed_json":
            bad, how = F.malform(text, rng)
            return bad.encode("utf-8"), {"how": how}
        return F.to_cp932(text), {"encoding": "cp932"}

    def _count(self, rel: str, group: list[Item]) -> None:
        self.file_counts[_ext(rel)] += 1
        for item in group:
            b = item.bundle
            self.bundle_counts[_bundle_label(b)] += 1
            for e in b["entry"]:
                self.resource_counts[e["resource"]["resourceType"]] += 1

    # --- re-sends (updated_resource / entered_in_error) ---------------------------------------------------
    def flush_resends(self, fac: Facility, pending: list[Resend], rng: random.Random, day: date | None) -> None:
        due = [r for r in pending if day is None or r.due <= day]
        for r in sorted(due, key=lambda r: r.due):
            pending.remove(r)
            self.emit_resend(fac, r, day or r.due, rng)

    def emit_resend(self, fac: Facility, r: Resend, day: date, rng: random.Random) -> None:
        submit = max(at(day, rng.randint(8, 20), rng.randint(0, 59)), r.orig_submit + timedelta(minutes=1))
        c = self.ctx(fac, r.patient, submit, submit, rng)
        res, rtype = r.resource, r.resource["resourceType"]
        res["meta"]["lastUpdated"] = c.ts
        res["patient" if rtype == "AllergyIntolerance" else "subject"] = c.subject()
        detail = _update(res, day) if r.kind == "updated_resource" else _enter_in_error(res)
        item = self._clins(c, rtype, [res])
        rel, ids = self.write_group(fac, day, [item], False, rng, None, faults_allowed=False)
        new = {"file": rel, "line": None, "bundle_identifier": ids[0]}
        old = {"file": r.orig_file, "line": r.orig_line, "bundle_identifier": r.orig_bundle}
        rid = F.resource_id(res)
        if r.kind == "updated_resource":
            self.planner.record(r.kind, r.orig_file, r.orig_line, r.orig_bundle, rid, superseded_by=new, **detail)
        else:
            self.planner.record(r.kind, rel, None, ids[0], rid, original=old, **detail)

    # --- kinds the dice did not produce ----------------------------------------------------------------------
    def force_missing(self) -> None:
        missing = self.planner.missing()
        if not missing:
            return
        with_patients = [f for f in self.facilities if f.patients]
        candidates = [f for f in with_patients if f.connected] or with_patients
        candidates.sort(key=lambda f: f.ftype == "dental")  # lab results and referrals come from medical ones
        if not candidates:
            self.unforceable = missing
            return
        fac = candidates[0]
        p = self.patients[fac.patients[0]]
        rng = rng_for(self.seed, "forced")
        self.planner.dice = False
        for kind in missing:
            when = at(self.end, 21, rng.randint(0, 59))
            c = self.ctx(fac, p, when, when + timedelta(minutes=30), rng)
            if kind == "unknown_lab_code":
                item = self._clins(c, "Observation", [observation(c, i) for i in lab_items(c)])
            elif kind in ("medication_uncoded", "unknown_general_order_code"):
                c.by_identifier = False
                target = next((f for f in self.facilities if f.inst != fac.inst), fac)
                item = Item(referral_bundle(c, target, pick_conditions(c, True)), p, "referral", target.inst)
            else:
                ds = pick_conditions(c, True)
                item = self._clins(c, "Condition", [condition(c, d, primary=i == 0) for i, d in enumerate(ds)])
            pending: list[Resend] = []
            self.planner.force_next = kind
            self.write_group(fac, self.end, [item], False, rng, pending)
            if self.planner.force_next is not None:
                raise RuntimeError(f"could not force fault kind {kind}")
            self.flush_resends(fac, pending, rng, None)


def _ext(rel: str) -> str:
    name = rel.rsplit("/", 1)[-1]
    return name[name.index("."):].lstrip(".")


def _bundle_label(b: dict) -> str:
    if b["type"] == "collection":
        tag = next((t["code"] for t in b["meta"].get("tag", []) if t.get("system") == S.BUNDLE_RESOURCE_TYPE_CS), "?")
        return f"JP_Bundle_CLINS/{tag}"
    comp = b["entry"][0]["resource"]
    code = comp.get("type", {}).get("coding", [{}])[0].get("code")
    return {"57133-1": "JP_Bundle_eReferral", "18842-5": "JP_Bundle_eDischargeSummary"}.get(code, "document")


def _update(res: dict, day: date) -> dict:
    rtype = res["resourceType"]
    if rtype == "Condition":
        if res["verificationStatus"]["coding"][0]["code"] == "unconfirmed":
            res["verificationStatus"]["coding"][0].update(code="confirmed", display="Confirmed")
            res["code"]["text"] = res["code"]["text"].removesuffix("の疑い")
            return {"changed": "verificationStatus"}
        new = "remission" if res["clinicalStatus"]["coding"][0]["code"] == "resolved" else "resolved"
        res["clinicalStatus"]["coding"][0].update(code=new, display=new.capitalize())
        res["abatementDateTime"] = day.isoformat()
        return {"changed": "clinicalStatus"}
    if rtype == "AllergyIntolerance":
        res["clinicalStatus"]["coding"][0].update(code="inactive", display="Inactive")
        return {"changed": "clinicalStatus"}
    res["status"] = "corrected"
    if "valueQuantity" in res:
        v = res["valueQuantity"]["value"]
        res["valueQuantity"]["value"] = round(v * 1.1 + 0.1, 2) if isinstance(v, float) else v + 1
        return {"changed": "valueQuantity"}
    if "valueString" in res:
        res["valueString"] = res["valueString"] + "（再検）"
        return {"changed": "valueString"}
    cc = res["valueCodeableConcept"]
    cc["text"] = (cc.get("text") or "") + "（再検）"
    return {"changed": "valueCodeableConcept"}


def _enter_in_error(res: dict) -> dict:
    rtype = res["resourceType"]
    if rtype == "Observation":
        res["status"] = "entered-in-error"
        return {"changed": "status"}
    system = S.CONDITION_VER_STATUS if rtype == "Condition" else S.ALLERGY_VERIFICATION
    res["verificationStatus"] = {"coding": [{"system": system, "code": "entered-in-error",
                                             "display": "Entered in Error"}]}
    res.pop("clinicalStatus", None)  # con-5 / ait-2: no clinicalStatus on entered-in-error
    res.pop("abatementDateTime", None)
    return {"changed": "verificationStatus"}


def generate(out_dir: str | Path, facilities: int = 60, patients: int = 1500, seed: int = 42,
             fault_rate: float = 0.0, start: str | date = "2025-01-01", end: str | date = "2026-10-31", *,
             progress: Callable[[int, int], None] | None = None, self_check: bool = True) -> GenerateSummary:
    """Write a deterministic JP-CLINS sample (FHIR bundles, consents, access logs, facility registry) to out_dir.

    The same arguments always produce byte-identical files. `fault_rate` is the probability that a unit (file or
    bundle) gets one injected fault; every injected fault is listed in `_manifest.json`.
    """
    d0, d1 = check_arguments(facilities, patients, fault_rate, start, end)
    fault_rate = float(fault_rate)
    out = Path(out_dir)
    prepare_out_dir(out)
    end_dt = at(d1, 23, 59, 59)

    facs = make_facilities(facilities, seed, d0, d1)
    pats = make_patients(patients, seed, facs, out / "_truth" / "patients.csv")
    by_fac, by_patient = plan_visits(facs, pats, seed, d0, d1)
    fac_by_inst = {f.inst: f for f in facs}
    check = SelfCheck(enabled=self_check)

    # consents first (the FHIR writer does not need them; audit cases may add a withdrawal before any view)
    consents = plan_consents(seed, pats, by_patient, fac_by_inst, end_dt)

    # FHIR bundles, facility by facility (a facility's day batch is the most held in memory)
    fw = FhirWriter(out, seed, fault_rate, d1, facs, pats, check)
    for n, f in enumerate(facs, start=1):
        fw.process_facility(f, by_fac[f.inst])
        if progress:
            progress(n, len(facs))
    fw.force_missing()

    # checkup results: eCheckup bundles into fhir/ (care relationships into the holdings), XML archives into checkups/
    checkup_out = write_checkups(out, seed, fault_rate, pats, facs, d0, d1, fw.files, check, fw.holdings)
    fw.file_counts.update(checkup_out.file_counts)
    fw.bundle_counts.update(checkup_out.bundle_counts)
    fw.resource_counts.update(checkup_out.resource_counts)

    # consent and access logs, with the audit truth (views name what the bundles left in the warehouse)
    logs = write_logs(out, seed, pats, by_patient, fac_by_inst, consents, fw.holdings, d0, end_dt, check)
    access_without_consent = logs.access_without_consent
    (out / "_tmp").rmdir()

    write_registry(out / "facilities" / "facility_registry.csv", facs)
    fault_kinds = Counter(r["fault"] for r in fw.planner.records)
    manifest = {
        "generator": "pipelines.generate",
        "parameters": {"facilities": facilities, "patients": patients, "seed": seed, "fault_rate": fault_rate,
                       "start": d0.isoformat(), "end": d1.isoformat()},
        "counts": {
            "facilities": len(facs), "connected_facilities": sum(f.connected for f in facs), "patients": len(pats),
            "files": {"total": sum(fw.file_counts.values()), **dict(sorted(fw.file_counts.items()))},
            "bundles": {"total": sum(fw.bundle_counts.values()), **dict(sorted(fw.bundle_counts.items()))},
            "resources": {"total": sum(fw.resource_counts.values()), **dict(sorted(fw.resource_counts.items()))},
            "consents": logs.consents, "audit_events": logs.audit_events,
            "access_without_consent": len(access_without_consent),
            "audit_findings": len(logs.audit_truth),
            "faults": {"total": len(fw.planner.records), **dict(sorted(fault_kinds.items()))},
        },
        "notes": {
            "counts": "bundles/resources count what the files hold, faulty ones included, resubmitted copies excluded",
            "line": "1-based line of an .ndjson file; null for a .json file (one bundle) or a whole-file fault",
            "bundle_identifier": "Bundle.identifier.value as written in the file (after the fault, if it edits it)",
            "quarantine_file": "for .ndjson line faults (line not null) only that line is quarantined",
            "updated_resource": "file/line/bundle_identifier = the OLD version (superseded); superseded_by = the re-send",
            "entered_in_error": "file/line/bundle_identifier = the re-send carrying entered-in-error; original = old",
            "resubmitted_file": "file = the byte-identical copy; duplicate_of = the original",
            "consent": "see pipelines/generate/consent.py: the latest Consent (dateTime) at the access time decides",
            "audit_truth": "one entry per access with at least one expected audit finding (pipelines/audit/rules.py), "
                           "as of the sample's last day over the whole sample; computed from the plan by "
                           "pipelines/generate/audit_truth.py; case = the planted audit case (audit_cases.py)",
        },
        "faults": fw.planner.records,
        "forced_kinds_unavailable": fw.unforceable,
        "access_without_consent": access_without_consent,
        "audit_cases": logs.audit_cases,
        "audit_cases_unavailable": logs.audit_cases_unavailable,
        "audit_truth": logs.audit_truth,
    }
    # checkup faults stay apart from `faults` until the ingest handles checkup inputs (pipelines/generate/checkups.py)
    manifest["counts"]["checkups"] = checkup_out.counts
    manifest["notes"]["checkup_faults"] = ("file = fhir/… or checkups/…; item_codes = the items a correct validator "
                                           "removes (quarantine_item); document_id = the checkup's identifier")
    manifest["checkup_faults"] = checkup_out.faults
    manifest["checkup_forced_kinds_unavailable"] = checkup_out.unavailable
    (out / "_manifest.json").write_bytes(dumps(manifest, pretty=True) + b"\n")
    return GenerateSummary(
        out_dir=str(out), facilities=len(facs), connected_facilities=sum(f.connected for f in facs),
        patients=len(pats), files=sum(fw.file_counts.values()), bundles=sum(fw.bundle_counts.values()),
        resources=sum(fw.resource_counts.values()), resources_by_type=dict(sorted(fw.resource_counts.items())),
        consents=logs.consents, audit_events=logs.audit_events,
        access_without_consent=len(access_without_consent), faults=len(fw.planner.records),
        fault_kinds=dict(sorted(fault_kinds.items())), validated_bundles=check.bundles_checked,
        checkups=checkup_out.counts["checkups"],
    )
