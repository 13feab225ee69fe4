"""Acceptance: the warehouse's audit (DuckDB SQL over what it ingested) finds exactly the generator's truth
(plain Python over its own plan) — the same (access, rule) pairs, the same evidence where both state it — in a
small faulty sample and in a default-sized one."""

import json
from collections import Counter

import pytest

from pipelines.audit.findings import compute_findings
from pipelines.audit.rules import ELEVATED_WEIGHT, RULES
from pipelines.audit.window import AuditWindow
from pipelines.generate import audit_cases
from tests.audit.conftest import make_sample

#: planted case -> the finding its accesses must carry
CASE_FINDING = {
    "withdrawal": "A-AFTER-WITHDRAWAL", "no-consent": "A-NO-CONSENT", "emergency-no-consent": "A-EMERGENCY",
    "clerk": "A-ROLE", "undelivered": "A-UNDELIVERED", "emergency-share": "A-EMERGENCY", "volume": "A-VOLUME",
    "no-care": "A-NO-CARE",
}


def warehouse_findings(sample) -> dict[tuple[str, str], dict]:
    compute_findings(sample.con, AuditWindow(sample.end))
    return {(a, r): json.loads(e) for a, r, e in sample.con.execute(
        "SELECT access_id, rule_id, CAST(evidence AS VARCHAR) FROM audit_finding").fetchall()}


def truth(sample) -> dict[tuple[str, str], dict]:
    return {(t["access_id"], rule): t["evidence"][rule] for t in sample.manifest["audit_truth"]
            for rule in t["findings"]}


def assert_same_findings(sample) -> None:
    got, expected = warehouse_findings(sample), truth(sample)
    assert set(got) == set(expected), {"missing": sorted(set(expected) - set(got))[:10],
                                        "unexpected": sorted(set(got) - set(expected))[:10]}
    for (access_id, rule), ev in expected.items():
        wh = got[(access_id, rule)]
        if rule == "A-NO-CONSENT":
            assert wh["reason"] == ev["reason"], access_id
        elif rule == "A-EMERGENCY":
            assert (wh["elevated"], wh["consent_covered"], wh["care_relationship"]) == (
                ev["weight"] == ELEVATED_WEIGHT, ev["covered"], ev["care"]), access_id
        elif rule == "A-VOLUME":
            assert (wh["staff_day_flagged"], wh["facility_day_flagged"]) == (ev["staff_day"], ev["facility_day"])
        elif rule == "A-UNDELIVERED":
            assert wh["undelivered_resources"] == ev["resources"]
        elif rule == "A-ROLE":
            assert wh["staff_role"] == ev["role"]


def assert_every_case_planted(sample) -> None:
    manifest = sample.manifest
    assert manifest["audit_cases_unavailable"] == []
    findings = {t["access_id"]: set(t["findings"]) for t in manifest["audit_truth"]}
    for case, rule in CASE_FINDING.items():
        ids = manifest["audit_cases"][case]
        assert ids and all(rule in findings.get(i, set()) for i in ids), case
    # emergency access without consent is reviewed, never reported as a consent breach
    (etreat,) = manifest["audit_cases"]["emergency-no-consent"]
    entry = next(t for t in manifest["audit_truth"] if t["access_id"] == etreat)
    assert entry["findings"] == ["A-EMERGENCY"] and entry["evidence"]["A-EMERGENCY"]["covered"] is False
    # the abnormal emergency share is weighted; the undelivered exposure is the only one
    shares = [t for t in manifest["audit_truth"] if t["case"] == "emergency-share"]
    assert all(t["evidence"]["A-EMERGENCY"]["weight"] == ELEVATED_WEIGHT for t in shares)
    assert Counter(r for t in manifest["audit_truth"] for r in t["findings"])["A-UNDELIVERED"] == 1


def test_small_faulty_sample_matches_the_truth_exactly(audit_sample):
    assert_every_case_planted(audit_sample)
    assert_same_findings(audit_sample)


def test_every_rule_fires_and_is_catalogued(audit_sample):
    fired = {r for _, r in warehouse_findings(audit_sample)}
    assert fired == set(RULES) == set(CASE_FINDING.values()) | {"A-EMERGENCY"}


def test_truth_lists_positions_of_the_access_lines(audit_sample):
    for t in audit_sample.manifest["audit_truth"][:20]:
        line = (audit_sample.inbox / t["file"]).read_text(encoding="utf-8").splitlines()[t["line"] - 1]
        assert json.loads(line)["id"] == t["access_id"]


def test_cases_are_documented():
    for case in CASE_FINDING:
        assert f"\n  {case} " in audit_cases.__doc__, case


@pytest.mark.parametrize("size", [{"facilities": 60, "patients": 1500, "seed": 42, "fault_rate": 0.02}],
                         ids=["default-size"])
def test_default_sized_sample_matches_the_truth_exactly(tmp_path, size):
    sample = make_sample(tmp_path, self_check=False, **size)  # the generator's own tests cover its self-check
    try:
        assert_every_case_planted(sample)
        assert_same_findings(sample)
    finally:
        sample.con.close()
