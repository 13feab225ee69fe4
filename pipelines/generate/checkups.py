"""Checkup inputs of the sample: eCheckup FHIR bundles into OUT/fhir/ and 特定健診 XML archives into
OUT/checkups/, with their faults (manifest key `checkup_faults`) and the truth file OUT/_truth/checkups.csv.

    write_checkups(out, seed, fault_rate, patients, facilities, start, end, files, check, holdings) -> CheckupOutput

The truth file has one row per person × checkup × item with the values a correct sender writes (before any
fault), the person's sex, birth date, 年度末年齢 and prefecture, the checkup's メタボ判定 and 保健指導レベル,
where it was sent, and `in_warehouse`: whether a correct ingest keeps that item (false when a fault makes the
file, the document or the item fail).
"""

import csv
import dataclasses
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from itertools import groupby
from pathlib import Path

from pipelines.generate import checkup_faults as CF
from pipelines.generate.checkup_cda import archive_name, cda_document, index_xml, summary_xml, zip_bytes
from pipelines.generate.checkup_fhir import checkup_bundle
from pipelines.generate.checkup_plan import Checkup, plan_checkups
from pipelines.generate.checkup_values import Results
from pipelines.generate.common import rng_for
from pipelines.generate.facilities import Facility
from pipelines.generate.holdings import Holdings
from pipelines.generate.patients import Patient
from pipelines.generate.validate import SelfCheck
from pipelines.generate.writer import FhirFiles, dumps

TRUTH_COLUMNS = ["patient_key", "document_id", "source_form", "fhir_variant", "file", "institution_number",
                 "prefecture_code", "program", "fiscal_year", "checkup_date", "sex", "birth_date", "age", "item_code",
                 "item_name", "value_type", "value_number", "value_unit", "value_code", "value_code_system",
                 "value_text", "interpretation", "metabo", "guidance_level", "fault", "in_warehouse"]
COST_PER_PERSON = 8_800  # 円: summary.xml totalCostAmount is per-person cost × persons (a plausible figure)


@dataclass
class CheckupOutput:
    faults: list[dict] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)  # fault kinds the sample had no unit for
    counts: dict = field(default_factory=dict)
    file_counts: Counter = field(default_factory=Counter)  # FHIR files by extension (merged into the manifest)
    bundle_counts: Counter = field(default_factory=Counter)
    resource_counts: Counter = field(default_factory=Counter)


@dataclass
class _Archive:
    sender: str
    receiver: str
    day: date
    checkups: list[Checkup]
    fault: str | None = None


@dataclass
class _Plan:
    """Which unit gets which fault: archives by index, documents and checkups by document key."""
    archive_faults: dict[int, str] = field(default_factory=dict)
    checkup_faults: dict[tuple[str, str], str] = field(default_factory=dict)


def _snapshot(results: Results) -> Results:
    """A copy a fault's edits cannot reach (the truth keeps the values before the fault)."""
    return Results([dataclasses.replace(i) for i in results.items], results.metabo, results.level)


def _key(c: Checkup) -> tuple[str, str]:
    return c.facility.inst, c.document_id


def _archive_key(c: Checkup) -> tuple[str, str, str]:
    """One archive per 健診機関 × insurer × month: institutions send a month's results together."""
    return c.sent_on.strftime("%Y%m"), c.facility.inst, c.receiver


def _archives(xml: list[Checkup]) -> list[_Archive]:
    archives = []
    for (_, inst, receiver), group in groupby(sorted(xml, key=lambda c: (_archive_key(c), c.document_id)),
                                              key=_archive_key):
        members = list(group)
        day = max(c.sent_on for c in members)
        for c in members:
            c.sent_on = day  # sent with the archive
        archives.append(_Archive(inst, receiver, day, members))
    archives.sort(key=lambda a: (a.day, a.sender, a.receiver))
    return archives


def _plan_faults(rate: float, rng: random.Random, archives: list[_Archive],
                 fhir: list[Checkup]) -> tuple[_Plan, list[str]]:
    planner, plan = CF.CheckupFaultPlanner(rate, rng), _Plan()
    for n, archive in enumerate(archives):
        kind = planner.choose(CF.ARCHIVE_KINDS)
        if kind:
            plan.archive_faults[n] = kind
            continue
        for c in archive.checkups:
            if kind := planner.choose(CF.DOCUMENT_KINDS + CF.applicable_item_kinds(c.results)):
                plan.checkup_faults[_key(c)] = kind
    for c in fhir:
        if kind := planner.choose(CF.applicable_item_kinds(c.results)):
            plan.checkup_faults[_key(c)] = kind
    unavailable = []
    for kind in planner.missing():  # force the kinds the dice did not produce onto the last clean units
        if kind in CF.ARCHIVE_KINDS:
            faulted = set(plan.checkup_faults)
            clean = [n for n, a in enumerate(archives) if n not in plan.archive_faults
                     and not any(_key(c) in faulted for c in a.checkups)]
            if clean:
                plan.archive_faults[clean[-1]] = kind
                continue
        else:
            pool = [c for n, a in enumerate(archives) if n not in plan.archive_faults for c in a.checkups]
            if kind in CF.ITEM_KINDS:
                pool += fhir
            clean = [c for c in pool if _key(c) not in plan.checkup_faults
                     and (kind in CF.DOCUMENT_KINDS or kind in CF.applicable_item_kinds(c.results))]
            if clean:
                plan.checkup_faults[_key(clean[-1])] = kind
                continue
        unavailable.append(kind)
    return plan, unavailable


class _Writer:
    def __init__(self, out: Path, seed: int, files: FhirFiles, check: SelfCheck, holdings: Holdings):
        self.out, self.seed, self.files, self.check, self.holdings = out, seed, files, check, holdings
        self.output = CheckupOutput()
        self.truth: list[tuple[Checkup, Results, str, str | None, set[str] | None]] = []
        self.rng = rng_for(seed, "checkup-writer")

    def _truth(self, c: Checkup, true_results: Results, file: str, fault: str | None,
               lost_items: set[str] | None) -> None:
        """lost_items: None = every item kept; empty set = none kept (file or document rejected)."""
        self.truth.append((c, true_results, file, fault, lost_items))

    def fhir(self, c: Checkup, plan: _Plan) -> None:
        kind = plan.checkup_faults.get(_key(c))
        true_results = _snapshot(c.results) if kind else c.results
        lost = None
        detail: dict = {}
        if kind:
            codes, detail = CF.apply_item_fault(kind, c.results, self.rng)
            lost = set(codes)
        bundle = checkup_bundle(c, rng_for(self.seed, "checkup-fhir", c.facility.inst, c.document_id))
        if kind is None:
            self.check.bundle(bundle)
        rel = self.files.write(self.files.next_name(c.facility.inst, c.sent_on, ".json"), dumps(bundle))
        fac = c.facility
        if fac.first_submission_on is None or c.sent_on < fac.first_submission_on:
            fac.first_submission_on = c.sent_on
        # a document lands whole under the current ingest (items fail only in the checkup stage)
        self.holdings.record(bundle, c.patient.index, fac.inst, None, lost=False, clean=True)
        self.output.file_counts["json"] += 1
        self.output.bundle_counts["JP_Bundle_eCheckupGeneral" + ("" if c.variant == "clins" else " (generic)")] += 1
        for e in bundle["entry"]:
            self.output.resource_counts[e["resource"]["resourceType"]] += 1
        if kind:
            self.output.faults.append(CF.record(kind, "fhir", rel, c.document_id, sorted(lost),
                                                bundle_identifier=bundle["identifier"]["value"], **detail))
        self._truth(c, true_results, rel, kind, lost)

    def archive(self, a: _Archive, plan: _Plan, n: int) -> None:
        kind = plan.archive_faults.get(n)
        name = archive_name(a.sender, a.receiver, a.day)
        if kind == "checkup_bad_archive_name":
            name = f"{a.sender}_{a.receiver}_{a.day:%Y%m%d}_1.zip"  # 同日分割送信回数 missing
        rel = f"checkups/{name}"
        members, document_faults = [], []
        for c in a.checkups:
            doc_kind = plan.checkup_faults.get(_key(c))
            true_results = _snapshot(c.results) if doc_kind else c.results
            lost: set[str] | None = set() if kind and kind != "checkup_duplicate_archive" else None
            detail: dict = {}
            codes: list[str] = []
            if doc_kind in CF.ITEM_KINDS:
                codes, detail = CF.apply_item_fault(doc_kind, c.results, self.rng)
                lost = set(codes)
            text = cda_document(c)
            if doc_kind in CF.DOCUMENT_KINDS:
                text, detail = CF.apply_document_fault(doc_kind, text, self.rng)
                lost = set()
            members.append((f"DATA/{c.document_id}.xml", text))
            if doc_kind:
                document_faults.append(CF.record(doc_kind, "xml", rel, c.document_id, codes, **detail))
            self._truth(c, true_results, rel, kind if kind and kind != "checkup_duplicate_archive" else doc_kind,
                        lost)
        count = len(members)
        detail = {}
        index_count, summary_count = count, count
        if kind == "checkup_wrong_count":
            if self.rng.random() < 0.5:
                index_count = count + 1
            else:
                summary_count = count + 1
            detail = {"total_record_count": index_count, "total_subject_count": summary_count}
        payload = zip_bytes([("index.xml", index_xml(a.sender, a.receiver, a.day, index_count)),
                             ("summary.xml", summary_xml(summary_count, COST_PER_PERSON * count)), *members], a.day)
        if kind == "checkup_corrupt_zip":
            cut = self.rng.randint(len(payload) * 4 // 10, len(payload) * 8 // 10)
            payload, detail = payload[:cut], {"kept_bytes": cut, "of_bytes": len(payload)}
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
        self.output.faults += document_faults
        if kind == "checkup_duplicate_archive":
            copy_rel = f"checkups/{archive_name(a.sender, a.receiver, a.day, split=2)}"
            (self.out / copy_rel).write_bytes(payload)
            self.output.faults.append(CF.record(kind, "xml", copy_rel, None, duplicate_of=rel))
        elif kind:
            self.output.faults.append(CF.record(kind, "xml", rel, None, documents=count, **detail))

    def write_truth(self) -> None:
        path = self.out / "_truth" / "checkups.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(TRUTH_COLUMNS)
            for c, results, file, fault, lost in self.truth:
                p = c.patient
                for item in results.items:
                    kept = lost is None or (bool(lost) and item.code not in lost and not _replaced(c, item.code))
                    w.writerow([p.key, c.document_id, c.form, c.variant or "", file, c.facility.inst, p.pref_code,
                                c.program, c.fiscal_year, c.day.isoformat(), p.gender, p.birth_date.isoformat(),
                                c.age, item.code, item.name, item.value_type,
                                "" if item.number is None else item.number, item.unit or "", item.choice or "",
                                item.choice_table or "", item.text or "", item.interpretation or "",
                                results.metabo or "", results.level or "", fault or "", "true" if kept else "false"])


def _replaced(c: Checkup, code: str) -> bool:
    """An item whose code a fault replaced is not in the warehouse under its true code."""
    return not any(i.code == code for i in c.results.items)


def write_checkups(out: Path, seed: int, fault_rate: float, patients: list[Patient], facilities: list[Facility],
                   start: date, end: date, files: FhirFiles, check: SelfCheck, holdings: Holdings) -> CheckupOutput:
    checkups = plan_checkups(seed, patients, facilities, start, end)
    fhir = [c for c in checkups if c.form == "fhir"]
    archives = _archives([c for c in checkups if c.form == "xml"])
    plan, unavailable = _plan_faults(fault_rate, rng_for(seed, "checkup-faults"), archives, fhir)
    writer = _Writer(out, seed, files, check, holdings)
    for c in fhir:
        writer.fhir(c, plan)
    (out / "checkups").mkdir(parents=True, exist_ok=True)
    for n, archive in enumerate(archives):
        writer.archive(archive, plan, n)
    writer.write_truth()
    output = writer.output
    output.unavailable = unavailable
    programs = Counter(c.program for c in checkups)
    output.counts = {
        "checkups": len(checkups), "persons": len({c.patient.index for c in checkups}),
        "by_program": dict(sorted(programs.items())),
        "fhir_bundles": {"total": len(fhir), "clins": sum(c.variant == "clins" for c in fhir),
                         "generic": sum(c.variant == "generic" for c in fhir)},
        "xml_archives": len(archives) + sum(k == "checkup_duplicate_archive" for k in plan.archive_faults.values()),
        "xml_documents": sum(len(a.checkups) for a in archives),
        "items": sum(len(c.results.items) for c in checkups),
        "faults": {"total": len(output.faults), **dict(sorted(Counter(f["fault"] for f in output.faults).items()))},
    }
    return output
