"""The sample generator: determinism, IG conformance of clean output, and faults that are where the manifest says."""

import argparse
import csv
import gzip
import hashlib
import re
from datetime import date, datetime
from pathlib import Path

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class

from pipelines.fhir import jlac10
from pipelines.fhir import systems as S
from pipelines.fhir.bundle_kinds import BUNDLE_KINDS
from pipelines.generate import cli, generate
from pipelines.generate.consent import ConsentEvent, covers
from pipelines.generate.faults import ALL_KINDS, EXPECTED
from pipelines.generate.formulary import general_order_codes
from pipelines.rules import RULES

SMALL = {"facilities": 10, "patients": 120}
R2152 = re.compile(r"^[0-4][0-9][1-3][0-9]{7}\^20[2-3][0-9]\^[A-Za-z0-9\-]{1,36}$")
R1013 = re.compile(r"^[0-9]{8}:[^:^\s^　]*:[^:^\s^　]*:(.{0}|[0-9][0-9])$")
INSTITUTION = re.compile(r"^(0[1-9]|[1-3][0-9]|4[0-7])[13][0-9]{7}$")
LOCAL_ID = re.compile(r"^urn:oid:1\.2\.392\.100495\.20\.3\.51\.1[0-4][0-9][1-3][0-9]{7}$")
FULL_WIDTH = re.compile(r"[０-９ぁ-んァ-ヶ一-龥]")


# --- fixtures -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    generate(out, seed=7, fault_rate=0.0, **SMALL)
    return out


@pytest.fixture(scope="module")
def faulty(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faulty")
    generate(out, seed=7, fault_rate=0.1, **SMALL)
    return out


# --- helpers ------------------------------------------------------------------------------------------------

def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def raw_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def bundles_in(path: Path, only_line: int | None = None) -> list[tuple[int | None, dict]]:
    data = raw_bytes(path)
    if ".ndjson" in path.name:
        return [(i, orjson.loads(line)) for i, line in enumerate(data.split(b"\n"), start=1)
                if line.strip() and only_line in (None, i)]
    return [(None, orjson.loads(data))]


def all_bundles(root: Path):
    for path in sorted((root / "fhir").iterdir()):
        for line, bundle in bundles_in(path):
            yield path, line, bundle


def file_order(rel: str) -> tuple[str, str, int]:
    """(医療機関番号, YYYYMMDD, seq) of fhir/<inst>_<date>_<seq>.<ext>."""
    inst, day, seq = rel.rsplit("/", 1)[-1].split(".", 1)[0].split("_")
    return inst, day, int(seq)


def manifest(root: Path) -> dict:
    return orjson.loads((root / "_manifest.json").read_bytes())


def resource_id(res: dict) -> str | None:
    return next((i["value"] for i in res.get("identifier", []) if isinstance(i, dict)
                 and i.get("system") == S.RESOURCE_INSTANCE_ID), None)


def institution(res: dict) -> str | None:
    return next((x["valueIdentifier"]["value"] for x in res.get("extension", [])
                 if x["url"] == S.EXT_INSTITUTION_NUMBER), None)


def profile(res: dict) -> str | None:
    profiles = res.get("meta", {}).get("profile") or [None]
    return S.strip_version(profiles[0])


def codings(cc: dict, system: str) -> list[dict]:
    return [c for c in cc.get("coding", []) if c.get("system") == system]


# --- determinism --------------------------------------------------------------------------------------------

def test_same_seed_gives_identical_files(clean, tmp_path):
    generate(tmp_path / "again", seed=7, fault_rate=0.0, **SMALL)
    assert tree_digest(clean) == tree_digest(tmp_path / "again")


def test_different_seed_gives_different_files(clean, tmp_path):
    generate(tmp_path / "other", seed=8, fault_rate=0.0, **SMALL)
    a, b = tree_digest(clean), tree_digest(tmp_path / "other")
    assert a != b
    assert a["_truth/patients.csv"] != b["_truth/patients.csv"]


def test_faulty_sample_is_deterministic_too(faulty, tmp_path):
    generate(tmp_path / "again", seed=7, fault_rate=0.1, **SMALL)
    assert tree_digest(faulty) == tree_digest(tmp_path / "again")


# --- clean output follows the IG ------------------------------------------------------------------------------

def test_fault_rate_zero_injects_nothing(clean):
    m = manifest(clean)
    assert m["faults"] == [] and m["counts"]["faults"] == {"total": 0}
    assert m["counts"]["bundles"]["total"] > 100 and m["counts"]["resources"]["total"] > 1000
    assert {"json", "ndjson"} <= set(m["counts"]["files"])


def check_ig(bundle: dict) -> None:
    """The JP-CLINS checklist (domain_spec §1.7) on one clean bundle."""
    prof = profile(bundle)
    assert prof in BUNDLE_KINDS, prof
    kind = BUNDLE_KINDS[prof]
    assert bundle["type"] == kind.bundle_type and bundle["entry"][0]["resource"]["resourceType"] == kind.first_entry
    if kind.category == "checkup":  # eCheckup documents follow their own IG: tests/checkups/test_generated_checkups.py
        return
    assert bundle["identifier"]["system"] == S.BUNDLE_IDENTIFIER
    assert R2152.match(bundle["identifier"]["value"]), bundle["identifier"]["value"]
    assert bundle["meta"]["lastUpdated"] and bundle["timestamp"]
    inst = bundle["identifier"]["value"].split("^")[0]
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert all(u.startswith("urn:uuid:") for u in urls) and len(set(urls)) == len(urls)
    patients = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert len(patients) == 1
    patient_url, patient = patients[0]["fullUrl"], patients[0]["resource"]
    assert profile(patient) == S.PATIENT_ECS
    members = [i["value"] for i in patient["identifier"] if i["system"] == S.INSURANCE_MEMBER_ID]
    assert len(members) == 1 and R1013.match(members[0]), members
    assert all(LOCAL_ID.match(i["system"]) for i in patient["identifier"] if i["system"] != S.INSURANCE_MEMBER_ID)
    assert {n["extension"][0]["valueCode"] for n in patient["name"]} == {"IDE", "SYL"}
    assert all("\u3000" not in n["text"] and " " in n["text"] for n in patient["name"])
    assert patient["gender"] and patient["birthDate"] and patient["address"][0]["text"]
    if kind.bundle_type == "collection":
        tags = [t["code"] for t in bundle["meta"]["tag"] if t["system"] == S.BUNDLE_RESOURCE_TYPE_CS]
        assert len(tags) == 1 and tags[0] in ("Condition", "AllergyIntolerance", "Observation")
        rest = [e["resource"] for e in bundle["entry"][1:]]
        assert rest and all(r["resourceType"] == tags[0] for r in rest)
    else:
        comp = bundle["entry"][0]["resource"]
        assert comp["type"]["coding"][0]["code"] in kind.doc_types and comp["status"] == "final"
        assert comp["subject"]["reference"] == patient_url
        rest = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] in S.ENTRY_PROFILES]
    for r in rest:
        rt = r["resourceType"]
        assert profile(r) == S.ENTRY_PROFILES[rt]
        assert INSTITUTION.match(institution(r) or "") and institution(r) == inst
        assert resource_id(r)
        subject = r.get("patient" if rt == "AllergyIntolerance" else "subject")
        assert subject == {"reference": patient_url} or subject["identifier"]["value"] == members[0]
        tags = {t["code"] for t in r["meta"].get("tag", [])}
        if rt in ("Condition", "Observation"):
            encounters = [c for c in r["contained"] if c["resourceType"] == "Encounter"]
            assert encounters and encounters[0]["meta"]["profile"] == [S.JP_ENCOUNTER]
            assert any(x["url"] == S.EXT_DEPARTMENT for x in r["extension"])
        if rt == "Condition":
            assert r["onsetDateTime"] and codings(r["code"], S.MEDIS_DISEASE) and codings(r["code"], S.ICD10)
            assert r["code"]["text"] and r["verificationStatus"]["coding"][0]["code"] in ("confirmed", "unconfirmed")
            assert r["category"][0]["coding"][0]["code"] == "encounter-diagnosis" and r["clinicalStatus"]
            assert tags <= {"LTS", "UNINFORMED", "UNDELIVERED"}
        elif rt == "Observation":
            assert r["category"][0]["coding"][0]["code"] == "laboratory" and tags <= {"LTS"}
            core = codings(r["code"], S.CORE_LABO_CS)
            infection = codings(r["code"], S.INFECTION_LABO_CS)
            jlac = codings(r["code"], S.JLAC10_SYSTEMS[0])
            assert len(core) + len(infection) == 1 and len(jlac) == 1
            code = (core or infection)[0]["code"]
            assert jlac[0]["code"] == code and jlac10.lab_kind(code) == ("lab-result" if core else "infection")
            assert (core or infection)[0]["display"] == jlac10.coding_display(code)
            assert any(c["resourceType"] == "Specimen" for c in r["contained"])
            assert r["effectiveDateTime"] <= r["issued"] and any(k.startswith("value") for k in r)
        elif rt == "AllergyIntolerance":
            assert r.get("category", ["food"])[0] in ("medication", "food", "environment")
            assert r["code"]["text"] and r["clinicalStatus"] and tags <= {"LTS"}
        elif rt == "MedicationRequest":
            yj = codings(r["medicationCodeableConcept"], S.YJ_CODE)
            general = codings(r["medicationCodeableConcept"], S.GENERAL_ORDER_CODE)
            assert len(yj) + len(general) == 1 and r["medicationCodeableConcept"]["text"]
            assert all(g["code"] in general_order_codes() for g in general)
            assert len(yj[0]["code"]) == 12 if yj else True
            systems = {i["system"] for i in r["identifier"]}
            assert {S.RP_GROUP_NUMBER, S.RP_ADMINISTRATION_INDEX, S.RESOURCE_INSTANCE_ID} <= systems
            usage = codings(r["dosageInstruction"][0]["timing"]["code"], S.JAMI_USAGE)
            assert usage and re.fullmatch(r"[0-9A-Z]{16}", usage[0]["code"])
            assert r["status"] == "completed" and r["intent"] == "order" and r["authoredOn"]
            assert r["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["code"] in ("TAB", "CAP")
            assert r["category"][0]["coding"][0]["code"] in ("OHP", "DCG")


def test_clean_bundles_follow_the_ig(clean):
    seen_ids: set[str] = set()
    labels = set()
    for path, line, bundle in all_bundles(clean):
        check_ig(bundle)
        labels.add(profile(bundle))
        for e in bundle["entry"]:
            rid = resource_id(e["resource"]) if e["resource"]["resourceType"] in S.ENTRY_PROFILES else None
            if rid:
                assert rid not in seen_ids, f"resourceInstance id {rid} sent twice at fault_rate 0"
                seen_ids.add(rid)
        name = path.name
        assert re.fullmatch(r"\d{10}_\d{8}_\d{3}\.(json|ndjson)(\.gz)?", name)
        assert name[:10] == bundle["identifier"]["value"][:10]
        assert name[11:19] == bundle["timestamp"][:10].replace("-", "")
    assert {S.BUNDLE_CLINS, S.BUNDLE_EREFERRAL} <= labels


def test_some_insurance_identifiers_are_full_width(clean):
    with open(clean / "_truth" / "patients.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ids = [r["insurance_id"] for r in rows]
    assert len(ids) == SMALL["patients"] and all(R1013.match(i) for i in ids)
    assert sum(bool(FULL_WIDTH.search(i)) for i in ids) >= len(ids) // 10
    assert any(i.endswith(":") for i in ids)  # empty 枝番


def test_only_connected_facilities_submit_after_connection(clean):
    with open(clean / "facilities" / "facility_registry.csv", encoding="utf-8", newline="") as fh:
        reg = {r["institution_number"]: r for r in csv.DictReader(fh)}
    assert len(reg) == SMALL["facilities"]
    assert {r["facility_type"] for r in reg.values()} <= {"hospital", "clinic", "dental"}
    for r in reg.values():
        assert INSTITUTION.match(r["institution_number"])
        assert (r["institution_number"][2] == "3") == (r["facility_type"] == "dental")
    for path in (clean / "fhir").iterdir():
        row = reg[path.name[:10]]
        assert row["connected_on"] and path.name[11:19] > row["connected_on"].replace("-", "")
        assert row["first_submission_on"].replace("-", "") <= path.name[11:19]


def test_r4b_structure_of_a_sample(clean):
    bundle_model = get_fhir_model_class("Bundle")
    for n, (_, _, bundle) in enumerate(all_bundles(clean)):
        if n % 7 == 0 or bundle["type"] == "document":
            bundle_model.model_validate(bundle)
    for folder, rtype in (("consent", "Consent"), ("access", "AuditEvent")):
        model = get_fhir_model_class(rtype)
        for path in sorted((clean / folder).iterdir())[:6]:
            for line in path.read_bytes().splitlines():
                model.model_validate(orjson.loads(line))


# --- consent and access logs -------------------------------------------------------------------------------

def _consent_events(root: Path) -> dict[str, list[ConsentEvent]]:
    by_member: dict[str, list[ConsentEvent]] = {}
    for path in sorted((root / "consent").iterdir()):
        assert re.fullmatch(r"consent_\d{6}\.ndjson", path.name)
        for line in path.read_bytes().splitlines():
            c = orjson.loads(line)
            assert c["resourceType"] == "Consent" and c["scope"]["coding"][0]["code"] == "patient-privacy"
            assert c["category"][0]["coding"][0] == {"system": S.LOINC, "code": "59284-0", "display": "Patient Consent"}
            assert path.name[8:14] == c["dateTime"][:7].replace("-", "")
            prov = c["provision"]
            actors = prov.get("actor")
            kinds = prov.get("code")
            assert all(k["coding"][0]["code"] in S.INFORMATION_KINDS for k in kinds or [])
            ev = ConsentEvent(
                c["id"], datetime.fromisoformat(c["dateTime"]), c["status"], prov["type"],
                datetime.fromisoformat(prov["period"]["start"]),
                datetime.fromisoformat(prov["period"]["end"]) if "end" in prov["period"] else None,
                tuple(a["reference"]["identifier"]["value"] for a in actors) if actors else None,
                tuple(k["coding"][0]["code"] for k in kinds) if kinds else None)
            by_member.setdefault(c["patient"]["identifier"]["value"], []).append(ev)
    return by_member


def test_access_without_consent_is_reproducible_from_the_files(clean):
    consents = _consent_events(clean)
    assert any(e.status == "inactive" for evs in consents.values() for e in evs) or len(consents) < 50
    uncovered = set()
    total = 0
    for path in sorted((clean / "access").iterdir()):
        for n, line in enumerate(path.read_bytes().splitlines(), start=1):
            a = orjson.loads(line)
            total += 1
            assert a["type"]["code"] == "rest" and a["subtype"][0]["code"] == "read" and a["action"] == "R"
            assert a["outcome"] == "0" and a["purposeOfEvent"][0]["coding"][0]["code"] in ("TREAT", "ETREAT")
            viewer = next(ag for ag in a["agent"] if ag["requestor"])["who"]["identifier"]
            assert viewer["system"] == S.INSTITUTION_NO and INSTITUTION.match(viewer["value"])
            patient = next(e for e in a["entity"] if e["role"]["code"] == "1")
            member = patient["what"]["identifier"]["value"]
            data = next(e for e in a["entity"] if e["role"]["code"] == "4")
            kind = data["detail"][0]["valueString"]
            assert data["detail"][0]["type"] == S.AUDIT_DETAIL_INFORMATION_KIND and kind in S.INFORMATION_KINDS
            if not covers(consents.get(member, []), viewer["value"], kind, datetime.fromisoformat(a["recorded"])):
                uncovered.add((f"access/{path.name}", n, a["id"]))
    listed = {(r["file"], r["line"], r["audit_event_id"]) for r in manifest(clean)["access_without_consent"]}
    assert uncovered == listed
    assert total > 50 and len(listed) < total * 0.1


# --- faults ---------------------------------------------------------------------------------------------------

def test_every_fault_kind_occurs_at_rate_0_1(faulty):
    records = manifest(faulty)["faults"]
    assert {r["fault"] for r in records} == set(ALL_KINDS)
    for r in records:
        rule, outcome = EXPECTED[r["fault"]]
        assert (r["expected_rule"], r["expected_outcome"]) == (rule, outcome)
        assert r["expected_rule"] is None or r["expected_rule"] in RULES
        assert (faulty / r["file"]).is_file()


def _find(root: Path, rec: dict, key: str = "file", line_key: str = "line", bid_key: str = "bundle_identifier"):
    bundles = [b for _, b in bundles_in(root / rec[key], rec[line_key])]
    bundle = next(b for b in bundles if b["identifier"]["value"] == rec[bid_key])
    res = None
    if rec.get("resource_identifier"):
        res = next(e["resource"] for e in bundle["entry"] if resource_id(e["resource"]) == rec["resource_identifier"])
    return bundle, res


def test_each_fault_is_where_the_manifest_says(faulty):
    for rec in manifest(faulty)["faults"]:
        kind, path = rec["fault"], faulty / rec["file"]
        if kind in ("truncated_json", "malformed_json"):
            data = raw_bytes(path)
            if rec["line"] is None:
                data.decode("utf-8")
                with pytest.raises(orjson.JSONDecodeError):
                    orjson.loads(data)
            else:
                lines = [x for x in data.split(b"\n") if x.strip()]
                for n, line in enumerate(lines, start=1):
                    if n == rec["line"]:
                        with pytest.raises(orjson.JSONDecodeError):
                            orjson.loads(line)
                    else:
                        orjson.loads(line)  # the rest of the file is fine
            continue
        if kind == "not_utf8":
            with pytest.raises(UnicodeDecodeError):
                raw_bytes(path).decode("utf-8")
            raw_bytes(path).decode("cp932")
            continue
        if kind == "resubmitted_file":
            assert path.read_bytes() == (faulty / rec["duplicate_of"]).read_bytes() and path != faulty / rec["duplicate_of"]
            continue
        bundle, res = _find(faulty, rec)
        if kind == "missing_profile":
            assert "profile" not in bundle["meta"]
        elif kind == "wrong_profile":
            assert profile(bundle) not in BUNDLE_KINDS
        elif kind == "bad_bundle_identifier":
            assert not R2152.match(bundle["identifier"]["value"])
        elif kind == "bad_insurance_identifier":
            patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
            member = next(i["value"] for i in patient["identifier"] if i["system"] == S.INSURANCE_MEMBER_ID)
            assert not R1013.match(member)
        elif kind == "missing_institution_number":
            assert bundle["type"] == "collection" and institution(res) is None
        elif kind == "bad_institution_number":
            assert not INSTITUTION.match(institution(res))
        elif kind == "unknown_lab_code":
            listed = [c for c in res["code"]["coding"] if c["system"] in S.JLAC10_SYSTEMS]
            assert listed and all(len(c["code"]) == 17 and jlac10.lab_kind(c["code"]) is None for c in listed)
        elif kind == "wrong_entry_profile":
            assert profile(res) != S.ENTRY_PROFILES[res["resourceType"]]
        elif kind == "medication_uncoded":
            systems = {c["system"] for c in res["medicationCodeableConcept"]["coding"]}
            assert systems == {S.HOT9}
        elif kind == "unknown_general_order_code":
            code = codings(res["medicationCodeableConcept"], S.GENERAL_ORDER_CODE)[0]["code"]
            assert code not in general_order_codes()
        elif kind == "updated_resource":
            _, new = _find(faulty, {**rec["superseded_by"], "resource_identifier": rec["resource_identifier"]})
            assert institution(new) == institution(res) and new != res
            assert new["meta"]["lastUpdated"] > res["meta"]["lastUpdated"]
            assert file_order(rec["superseded_by"]["file"]) > file_order(rec["file"])
        elif kind == "entered_in_error":
            status = res.get("status") if res["resourceType"] == "Observation" else \
                res["verificationStatus"]["coding"][0]["code"]
            assert status == "entered-in-error"
            _, old = _find(faulty, {**rec["original"], "resource_identifier": rec["resource_identifier"]})
            assert old["meta"]["lastUpdated"] < res["meta"]["lastUpdated"] and institution(old) == institution(res)
            assert file_order(rec["file"]) > file_order(rec["original"]["file"])
        if rec.get("resource_identifier") and kind not in ("updated_resource",):
            others = [e["resource"] for e in bundle["entry"] if e["resource"] is not res]
            assert any(o["resourceType"] == "Patient" for o in others)  # the rest of the bundle is still there


def test_tiny_sample_still_gets_every_kind(tmp_path):
    generate(tmp_path / "tiny", facilities=3, patients=12, seed=3, fault_rate=0.01)
    kinds = {r["fault"] for r in manifest(tmp_path / "tiny")["faults"]}
    assert kinds == set(ALL_KINDS)


# --- command line ---------------------------------------------------------------------------------------------

def _args(tmp_path, **over):
    base = {"out": str(tmp_path / "cli"), "facilities": 3, "patients": 10, "seed": 1, "fault_rate": 0.0,
            "start": "2025-01-01", "end": "2025-12-31", "json": True}
    return argparse.Namespace(**{**base, **over})


@pytest.mark.parametrize("over", [{"facilities": -1}, {"patients": -5}, {"fault_rate": 1.5}, {"fault_rate": -0.1},
                                  {"start": "2025-13-01"}, {"start": "2026-01-01", "end": "2025-01-01"}])
def test_cli_rejects_bad_arguments(tmp_path, capsys, over):
    assert cli.run(_args(tmp_path, **over)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err


def test_cli_json_summary(tmp_path, capsys):
    assert cli.run(_args(tmp_path)) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["patients"] == 10 and summary["facilities"] == 3 and summary["faults"] == 0
    assert (tmp_path / "cli" / "_manifest.json").is_file()
    assert date.fromisoformat("2025-12-31")  # the end bound was honoured by construction
