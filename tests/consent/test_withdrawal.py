"""Withdrawing consent hides the patient's rows through `shared` from the withdrawal on, at the next run,
while the record of earlier accesses stays as it was; the patient's own access history reads it back."""

import csv
import json

import pytest

from pipelines.config import load_settings
from pipelines.generate import generate
from pipelines.ingest.pseudonym import patient_key
from pipelines.reports.access_history import access_history, render
from tests.conftest import run_ingest

WITHDRAWN_AT = "2026-11-01T09:00:00+09:00"
BEFORE, AFTER = "2026-10-31 12:00:00+09", "2026-11-02 12:00:00+09"


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    inbox = tmp_path_factory.mktemp("withdraw")
    generate(inbox, facilities=10, patients=150, seed=5, fault_rate=0.0)
    _, con = run_ingest(inbox, inbox.parent / "withdraw.duckdb")
    con.close()
    return inbox, inbox.parent / "withdraw.duckdb"


def _visible(con, viewer, as_of) -> dict[str, int]:
    return dict(con.execute(
        "SELECT patient_key, count(*) FROM shared.visible_condition(?, ?::TIMESTAMPTZ) GROUP BY ALL",
        [viewer, as_of]).fetchall())


def test_withdrawal_hides_rows_from_its_time_and_keeps_access_log(ingested):
    inbox, warehouse = ingested
    key = load_settings().pseudonym_key
    truth = list(csv.DictReader((inbox / "_truth" / "patients.csv").open(encoding="utf-8")))
    _, con = run_ingest(inbox, warehouse)
    # a patient some facility can see before the withdrawal
    facilities = [r[0] for r in con.execute("SELECT institution_number FROM core.facility ORDER BY 1").fetchall()]
    seen = {f: _visible(con, f, BEFORE) for f in facilities}
    viewer = next(f for f in facilities if seen[f])
    ids = {patient_key(p["insurance_id"], key): p["insurance_id"] for p in truth}
    target = next(k for k in sorted(seen[viewer]) if k in ids)
    access_before = con.execute("SELECT * FROM core.access_event ORDER BY access_id").fetchall()
    con.close()

    withdrawal = {"resourceType": "Consent", "id": "withdraw-test-1", "status": "inactive",
                  "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                        "code": "patient-privacy"}]},
                  "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
                  "patient": {"identifier": {"system": "http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID",
                                             "value": ids[target]}},
                  "dateTime": WITHDRAWN_AT, "provision": {"type": "deny"}}
    (inbox / "consent" / "consent_withdrawal.ndjson").write_text(json.dumps(withdrawal, ensure_ascii=False) + "\n",
                                                                 encoding="utf-8")
    summary, con = run_ingest(inbox, warehouse)
    assert summary["files_ingested"] == 1 and summary["loaded_by_table"] == {"core.consent_event": 1}
    after = {f: _visible(con, f, AFTER) for f in facilities}
    assert all(target not in rows for rows in after.values())
    assert _visible(con, viewer, BEFORE) == seen[viewer]  # history is history
    assert con.execute("SELECT * FROM core.access_event ORDER BY access_id").fetchall() == access_before


def test_access_history_lists_kinds_never_records(ingested):
    inbox, warehouse = ingested
    key = load_settings().pseudonym_key
    truth = list(csv.DictReader((inbox / "_truth" / "patients.csv").open(encoding="utf-8")))
    _, con = run_ingest(inbox, warehouse)
    viewed = {k for (k,) in con.execute("SELECT DISTINCT patient_key FROM core.access_event").fetchall()}
    patient = next(p for p in truth if patient_key(p["insurance_id"], key) in viewed)
    frame = access_history(con, patient["insurance_id"], key)
    expected = con.execute("SELECT count(*) FROM core.access_event WHERE patient_key = ?",
                           [patient_key(patient["insurance_id"], key)]).fetchone()[0]
    assert frame.height == expected > 0
    assert frame["recorded"].to_list() == sorted(frame["recorded"].to_list(), reverse=True)
    text = render(frame, "text") + render(frame, "csv")
    assert patient["insurance_id"] not in text and patient["name_text"] not in text
    # no diagnosis text at all, so no 未告知 diagnosis either
    names = [n for (n,) in con.execute("SELECT DISTINCT code_text FROM core.condition WHERE patient_key = ?",
                                        [patient_key(patient["insurance_id"], key)]).fetchall() if n]
    assert not any(name in text for name in names)
