"""A patient withdraws consent after they were viewed; re-running the ingest and the audit keeps the audit trail
of the earlier accesses intact (rows byte-for-byte unchanged, chain valid and extended) and flags a later view."""

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from pipelines.audit.chain import verify_chain
from pipelines.audit.findings import compute_findings
from pipelines.audit.window import AuditWindow
from pipelines.generate.common import fhir_instant
from tests.conftest import run_ingest


def _last_view_of_a_patient(inbox: Path) -> dict:
    """The latest TREAT AuditEvent of the patient viewed most often (their last access, as a dict)."""
    events = [json.loads(line) for path in sorted((inbox / "access").iterdir())
              for line in path.read_text(encoding="utf-8").splitlines()]

    def member(e: dict) -> str:
        return next(x for x in e["entity"] if x["role"]["code"] == "1")["what"]["identifier"]["value"]

    counts: dict[str, int] = {}
    for e in events:
        counts[member(e)] = counts.get(member(e), 0) + 1
    busiest = max(sorted(counts), key=counts.get)
    treat = [e for e in events if member(e) == busiest and e["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"]
    return max(treat, key=lambda e: e["recorded"])


def _withdrawal(member_id: str, when: datetime) -> dict:
    return {"resourceType": "Consent", "id": "withdrawal-test-0001", "status": "inactive",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"identifier": {"system": "http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID",
                                       "value": member_id}},
            "dateTime": fhir_instant(when), "provision": {"type": "deny", "period": {"start": fhir_instant(when)}}}


def _findings(con, as_of) -> set[tuple[str, str]]:
    compute_findings(con, AuditWindow(as_of))
    return set(con.execute("SELECT access_id, rule_id FROM audit_finding").fetchall())


def test_withdrawal_keeps_earlier_trail_and_flags_later_views(audit_sample, tmp_path):
    audit_sample.con.execute("CHECKPOINT")
    inbox, warehouse = tmp_path / "inbox", tmp_path / "w.duckdb"
    shutil.copytree(audit_sample.inbox, inbox)
    shutil.copy(audit_sample.warehouse, warehouse)
    _, con = run_ingest(inbox, warehouse)  # the same inbox: nothing new
    as_of = audit_sample.end + timedelta(days=2)
    before_rows = con.execute("SELECT * FROM core.access_event ORDER BY chain_seq").fetchall()
    before = _findings(con, as_of)

    last = _last_view_of_a_patient(inbox)
    member = next(x for x in last["entity"] if x["role"]["code"] == "1")["what"]["identifier"]["value"]
    withdrawn_at = datetime.fromisoformat(last["recorded"]) + timedelta(hours=1)
    later = json.loads(json.dumps(last))
    later["id"], later["recorded"] = "after-withdrawal-0001", fhir_instant(withdrawn_at + timedelta(days=1))
    (inbox / "consent" / "consent_withdrawal.ndjson").write_text(
        json.dumps(_withdrawal(member, withdrawn_at), ensure_ascii=False) + "\n", encoding="utf-8")
    (inbox / "access" / "audit_later.ndjson").write_text(json.dumps(later, ensure_ascii=False) + "\n",
                                                         encoding="utf-8")
    con.close()
    summary, con = run_ingest(inbox, warehouse)
    try:
        assert summary["records_quarantined"] == 0 and summary["loaded_by_table"] == {
            "core.access_event": 1, "core.consent_event": 1}
        after_rows = con.execute("SELECT * FROM core.access_event ORDER BY chain_seq").fetchall()
        assert after_rows[:len(before_rows)] == before_rows  # the earlier trail, unchanged
        assert len(after_rows) == len(before_rows) + 1
        verdict = verify_chain(con)
        assert verdict.intact and verdict.head_seq == len(after_rows)

        after = _findings(con, as_of)
        earlier = {f for f in after if f[0] != later["id"]}
        assert earlier == before  # earlier accesses were inside the old consent: same findings as before
        assert (later["id"], "A-AFTER-WITHDRAWAL") in after and (later["id"], "A-NO-CONSENT") not in after
    finally:
        con.close()
