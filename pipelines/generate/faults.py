"""Fault injection: which unit gets which fault, and the edits that make it.

Units: a file (file-level kinds), or a bundle (bundle-level kinds, line-level kinds inside .ndjson, and
resource-level kinds that hit one resource of the bundle). A unit gets at most one fault; a file with a
file-level fault gets no bundle fault, so every fault's effect is observable on its own. `fault_rate` is the
probability that a unit is hit; when it is, a kind that has not occurred yet is preferred (rarest first), so a
default-sized sample shows every kind; `generate` forces the ones still missing at the end.
"""

import random

import orjson

from pipelines.fhir import jlac10
from pipelines.fhir import systems as S
from pipelines.generate import codes

#: kind -> (expected_rule, expected_outcome)
EXPECTED: dict[str, tuple[str | None, str]] = {
    "truncated_json": ("K-JSON", "quarantine_file"),
    "malformed_json": ("K-JSON", "quarantine_file"),
    "not_utf8": ("K-ENCODING", "quarantine_file"),
    "missing_profile": ("K-PROFILE", "quarantine_bundle"),
    "wrong_profile": ("K-PROFILE", "quarantine_bundle"),
    "bad_bundle_identifier": ("R2152", "quarantine_bundle"),
    "bad_insurance_identifier": ("R1013", "quarantine_bundle"),
    "missing_institution_number": ("R9011", "quarantine_resource"),
    "bad_institution_number": ("R9012", "quarantine_resource"),
    "unknown_lab_code": ("K-TERM-JLAC10", "quarantine_resource"),
    "wrong_entry_profile": ("K-ENTRY-PROFILE", "quarantine_resource"),
    "medication_uncoded": ("R3010", "quarantine_resource"),
    "unknown_general_order_code": ("K-TERM-GENERAL-ORDER", "quarantine_resource"),
    "resubmitted_file": (None, "skipped_duplicate_file"),
    "updated_resource": (None, "superseded"),
    "entered_in_error": (None, "tombstone"),
}
#: preference order when a unit is hit and some kinds have not occurred yet (rarest eligible units first)
PRIORITY = ["medication_uncoded", "unknown_general_order_code", "unknown_lab_code", "updated_resource",
            "entered_in_error", "missing_institution_number", "resubmitted_file", "not_utf8", "truncated_json",
            "malformed_json", "bad_institution_number", "wrong_entry_profile", "missing_profile", "wrong_profile",
            "bad_bundle_identifier", "bad_insurance_identifier"]
ALL_KINDS = tuple(EXPECTED)
FILE_KINDS_JSON = ["truncated_json", "malformed_json", "not_utf8", "resubmitted_file"]
FILE_KINDS_NDJSON = ["not_utf8", "resubmitted_file"]
LINE_KINDS = ["truncated_json", "malformed_json"]  # one .ndjson line
BUNDLE_KINDS = ["missing_profile", "wrong_profile", "bad_bundle_identifier", "bad_insurance_identifier"]
RESOURCE_KINDS = ["missing_institution_number", "bad_institution_number", "unknown_lab_code", "wrong_entry_profile",
                  "medication_uncoded", "unknown_general_order_code", "updated_resource", "entered_in_error"]
RESEND_KINDS = ("updated_resource", "entered_in_error")
CLINICAL_TYPES = ("Condition", "AllergyIntolerance", "Observation", "MedicationRequest")
JLAC10_LIST_SYSTEMS = set(S.JLAC10_SYSTEMS)


class FaultPlanner:
    """Decides which fault (if any) a unit gets; kinds not seen yet come first, in `priority` order."""

    def __init__(self, rate: float, rng: random.Random, priority: list[str] = PRIORITY):
        self.rate = rate
        self.rng = rng
        self.priority = priority
        self.seen: set[str] = set()
        self.records: list[dict] = []
        self.dice = True  # False while forcing the missing kinds
        self.force_next: str | None = None

    def choose(self, applicable: list[str]) -> str | None:
        if self.force_next is not None:
            if self.force_next in applicable:
                kind, self.force_next = self.force_next, None
                self.seen.add(kind)
                return kind
            return None
        if self.rate <= 0 or not applicable or not self.dice or self.rng.random() >= self.rate:
            return None
        unseen = [k for k in self.priority if k in applicable and k not in self.seen]
        kind = unseen[0] if unseen else self.rng.choice(applicable)
        self.seen.add(kind)
        return kind

    def missing(self) -> list[str]:
        return [k for k in self.priority if k not in self.seen] if self.rate > 0 else []

    def record(self, kind: str, file: str, line: int | None, bundle_identifier: str | None,
               resource_identifier: str | None, **extra) -> None:
        rule, outcome = EXPECTED[kind]
        rec = {"fault": kind, "file": file, "line": line, "bundle_identifier": bundle_identifier,
               "resource_identifier": resource_identifier, "expected_rule": rule, "expected_outcome": outcome}
        rec.update(extra)
        self.records.append(rec)


# --- what a bundle can host ---------------------------------------------------------------------------------

def resource_id(res: dict) -> str | None:
    for ident in res.get("identifier", []) if isinstance(res.get("identifier"), list) else []:
        if ident.get("system") == S.RESOURCE_INSTANCE_ID:
            return ident.get("value")
    return None


def clinical_entries(bundle: dict) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] in CLINICAL_TYPES]


def applicable_bundle_kinds(bundle: dict, in_ndjson: bool) -> list[str]:
    kinds = list(BUNDLE_KINDS)
    if in_ndjson:
        kinds += LINE_KINDS
    resources = clinical_entries(bundle)
    types = {r["resourceType"] for r in resources}
    collection = bundle["type"] == "collection"
    if resources:
        kinds += ["bad_institution_number", "wrong_entry_profile"]
    if collection and resources:
        kinds += ["missing_institution_number", *RESEND_KINDS]
    if "Observation" in types:
        kinds.append("unknown_lab_code")
    if "MedicationRequest" in types:
        kinds += ["medication_uncoded", "unknown_general_order_code"]
    return kinds


def target_for(kind: str, bundle: dict, rng: random.Random) -> dict:
    """The resource a resource-level fault hits."""
    resources = clinical_entries(bundle)
    if kind == "unknown_lab_code":
        resources = [r for r in resources if r["resourceType"] == "Observation"]
    elif kind in ("medication_uncoded", "unknown_general_order_code"):
        resources = [r for r in resources if r["resourceType"] == "MedicationRequest"]
    return rng.choice(resources)


# --- edits ------------------------------------------------------------------------------------------------

def apply_bundle_fault(kind: str, bundle: dict, rng: random.Random) -> dict:
    """Edit `bundle` in place; returns details for the manifest record."""
    meta = bundle["meta"]
    if kind == "missing_profile":
        meta.pop("profile", None)
        return {}
    if kind == "wrong_profile":
        if bundle["type"] == "document":
            url = S.LEGACY_BUNDLE_EREFERRAL
        else:
            url = rng.choice([S.GENERIC_JP_BUNDLE, S.ECS_PROFILE_BASE + "JP_Bundle_eCS"])
        meta["profile"] = [url]
        return {"profile": url}
    if kind == "bad_bundle_identifier":
        inst, year, ident = bundle["identifier"]["value"].split("^")
        value = f"{inst[:9]}^{year}^{ident}" if rng.random() < 0.5 else f"{inst}^1999^{ident}"
        bundle["identifier"]["value"] = value
        return {"value": value}
    if kind == "bad_insurance_identifier":
        patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
        old = next(i["value"] for i in patient["identifier"] if i["system"] == S.INSURANCE_MEMBER_ID)
        insurer, symbol, number, branch = old.split(":")
        variant = rng.choice(["insurer7", "space", "branch3"])
        if variant == "insurer7":
            new = f"{insurer[1:]}:{symbol}:{number}:{branch}"
        elif variant == "space":
            k = max(1, len(number) // 2)
            new = f"{insurer}:{symbol}:{number[:k]} {number[k:]}:{branch}"
        else:
            new = f"{insurer}:{symbol}:{number}:{('0' + branch) if branch else '001'}"
        _replace_member_id(bundle, old, new)
        return {"value": new}
    raise ValueError(kind)


def _replace_member_id(node, old: str, new: str) -> None:
    if isinstance(node, dict):
        if node.get("system") == S.INSURANCE_MEMBER_ID and node.get("value") == old:
            node["value"] = new
        for v in node.values():
            _replace_member_id(v, old, new)
    elif isinstance(node, list):
        for v in node:
            _replace_member_id(v, old, new)


def unknown_jlac10_code(rng: random.Random) -> str:
    while True:  # analyte 5 + 識別 4 + 材料 3 + 測定法 3 + 結果識別 2 = 17 characters, not in either CLINS list
        code = f"3Z{rng.randint(100, 999)}0000023271{rng.randint(1, 99):02d}"
        if jlac10.lab_kind(code) is None:
            return code


def apply_resource_fault(kind: str, res: dict, rng: random.Random) -> dict:
    if kind == "missing_institution_number":
        res["extension"] = [x for x in res.get("extension", []) if x.get("url") != S.EXT_INSTITUTION_NUMBER]
        return {}
    if kind == "bad_institution_number":
        ext = next(x for x in res["extension"] if x.get("url") == S.EXT_INSTITUTION_NUMBER)
        inst = ext["valueIdentifier"]["value"]
        value = "48" + inst[2:] if rng.random() < 0.5 else inst[:9]
        ext["valueIdentifier"]["value"] = value
        return {"value": value}
    if kind == "unknown_lab_code":
        code = unknown_jlac10_code(rng)
        for c in res["code"]["coding"]:
            if c.get("system") in JLAC10_LIST_SYSTEMS:
                c["code"] = code
        return {"code": code}
    if kind == "wrong_entry_profile":
        rtype = res["resourceType"]
        url = S.JP_CORE_PROFILE_BASE + ("JP_Observation_LabResult" if rtype == "Observation" else f"JP_{rtype}")
        res["meta"]["profile"] = [url]
        return {"profile": url}
    if kind == "medication_uncoded":
        code, display = rng.choice(codes.HOT9_EXAMPLES)
        res["medicationCodeableConcept"] = {"coding": [{"system": S.HOT9, "code": code, "display": display}],
                                            "text": display.split("・")[0]}
        return {"code": code}
    if kind == "unknown_general_order_code":
        code, display = rng.choice(codes.UNKNOWN_GENERAL_ORDER_CODES)
        res["medicationCodeableConcept"] = {"coding": [{"system": S.GENERAL_ORDER_CODE, "code": code,
                                                        "display": display}], "text": display}
        return {"code": code}
    raise ValueError(kind)


# --- edits on the serialized text ---------------------------------------------------------------------------

def truncate(text: str, rng: random.Random) -> str:
    """Cut at a character boundary (so the bytes stay UTF-8 and the failure is K-JSON, not K-ENCODING)."""
    return text[: rng.randint(max(1, len(text) // 5), max(2, len(text) * 9 // 10))]


def malform(text: str, rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.5:
        bad, how = text.replace('"resourceType"', "resourceType", 1), "unquoted key"
    else:
        i = text.rindex("}")
        bad, how = text[:i] + "," + text[i:], "trailing comma"
    try:
        orjson.loads(bad)
    except orjson.JSONDecodeError:
        return bad, how
    return truncate(text, rng), "truncated"


def to_cp932(text: str) -> bytes:
    data = text.encode("cp932", errors="replace")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    raise ValueError("Shift_JIS bytes happen to be valid UTF-8: nothing Japanese in the file?")
