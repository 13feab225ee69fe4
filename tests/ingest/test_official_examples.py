"""The JP-CLINS IG's own example instances (../shared, read in place): valid bundles load with nothing
quarantined; each *ErrorExample* resource, wrapped in an otherwise valid bundle, is quarantined."""

import copy
import uuid

import pytest

from tests.conftest import load_example, run_ingest, write_bundles

VALID_BUNDLES = [
    "Bundle-Bundle-CLINS-Observations-Example-01.json",
    "Bundle-Bundle-CLINS-Referral-Example-01.json",
    "Bundle-Bundle-CLINS-Referral-NoEntry-Example-01.json",
    "Bundle-Bundle-CLINS-PCS-Example-01.json",
]


def quarantine_rows(con) -> list[tuple]:
    return con.execute("SELECT rule_id, resource_type, message FROM ops.quarantine ORDER BY ALL").fetchall()


@pytest.mark.parametrize("name", VALID_BUNDLES)
def test_official_bundle_loads_with_nothing_quarantined(examples, inbox, warehouse, name):
    bundle = load_example(name)
    summary, con = run_ingest(write_bundles(inbox, {name: bundle}), warehouse)
    assert quarantine_rows(con) == []
    assert summary["records_quarantined"] == 0
    assert summary["records_in"] == len(bundle["entry"])
    assert summary["records_in"] == (summary["records_loaded"] + summary["records_duplicate"]
                                     + summary["records_tombstoned"])


def test_observations_bundle_reaches_core_lab_result(examples, inbox, warehouse):
    summary, con = run_ingest(write_bundles(inbox, {"obs.json": load_example(VALID_BUNDLES[0])}), warehouse)
    rows = con.execute(
        "SELECT jlac10_code, clins_item, category, value_number, value_unit, institution_number, identity_occurrence "
        "FROM core.lab_result ORDER BY identity_occurrence").fetchall()
    # The example reuses one resource identifier for its 4 results: each keeps its own occurrence.
    assert [r[0] for r in rows] == ["3A015000001827101", "3H015000002326101", "8A065000002391901", "1A990000000190153"]
    assert rows[0][1:6] == ("ALB", "lab-result", 3.9, "mg/L", "1318814790")
    assert [r[6] for r in rows] == [1, 2, 3, 4]
    assert summary["loaded_by_table"] == {"core.lab_result": 4, "core.patient": 1}


def test_referral_document_keeps_sections_and_conditions(examples, inbox, warehouse):
    _, con = run_ingest(write_bundles(inbox, {"ref.json": load_example(VALID_BUNDLES[1])}), warehouse)
    doc = con.execute("SELECT category, type_code, title, institution_number FROM core.document").fetchall()
    assert doc == [("referral", "57133-1", "診療情報提供書", "1318814790")]
    sections = {r[0] for r in con.execute("SELECT DISTINCT section_code FROM core.document_section").fetchall()}
    assert {"920", "910", "300", "340", "510"} <= sections
    conditions = con.execute("SELECT count(*), count(DISTINCT medis_code) FROM core.condition").fetchone()
    assert conditions == (5, 4)
    allergy = dict(con.execute("SELECT category, count(*) FROM core.allergy GROUP BY ALL").fetchall())
    assert allergy == {"allergy": 2, "drug-contraindication": 1}


def _with_medication(referral: dict, medication: dict) -> dict:
    """The referral with `medication` added as an entry and listed under section 430 投薬指示."""
    bundle = copy.deepcopy(referral)
    full_url = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, medication['id'])}"
    bundle["entry"].append({"fullUrl": full_url, "resource": medication})
    structured = next(s for s in bundle["entry"][0]["resource"]["section"]
                      if s["code"]["coding"][0]["code"] == "300")
    structured["section"].append({
        "title": "投薬指示", "code": {"coding": [{"system": "http://jpfhir.jp/fhir/clins/CodeSystem/document-section",
                                               "code": "430", "display": "投薬指示"}]},
        "entry": [{"reference": full_url}],
    })
    return bundle


@pytest.mark.parametrize(("error_example", "rule_id"), [
    ("MedicationRequest-ErrorExample-JP-MedReq-ExtEye-Total1.json", "R3010"),
    ("MedicationRequest-ErrorExample-JP-MedReq-PO-SID-28days.json", "K-TERM-GENERAL-ORDER"),
])
def test_medication_error_examples_are_quarantined(examples, inbox, warehouse, error_example, rule_id):
    referral = load_example(VALID_BUNDLES[1])
    bundles = {
        "bad.json": _with_medication(referral, load_example(error_example)),
        # control: the valid twin of the PO-SID-28days error example loads
        "good.json": _with_medication(referral, load_example("MedicationRequest-Example-JP-MedReq-PO-SID-28days.json")),
    }
    summary, con = run_ingest(write_bundles(inbox, bundles), warehouse)
    rows = quarantine_rows(con)
    assert [(r[0], r[1]) for r in rows] == [(rule_id, "MedicationRequest")]
    assert summary["records_quarantined"] == 1
    loaded = con.execute("SELECT general_order_code, usage_code FROM core.medication_request").fetchall()
    assert loaded == [("1124030F2ZZZ", "1011100000000000")]


def test_observation_error_example_is_quarantined(examples, inbox, warehouse):
    bundle = load_example(VALID_BUNDLES[0])
    bundle["entry"][3]["resource"] = load_example("Observation-ErrorExample-ObsLabo-eGFR.json")
    summary, con = run_ingest(write_bundles(inbox, {"obs.json": bundle}), warehouse)
    rules = {r[0] for r in quarantine_rows(con)}
    # no contained Encounter, no department extension (and its subject is another patient)
    assert {"R9013O", "R9014O"} <= rules
    assert summary["records_quarantined"] == 1
    assert summary["loaded_by_table"]["core.lab_result"] == 3


def test_quarantine_row_names_file_position_and_raw_text(examples, inbox, warehouse):
    bundle = load_example(VALID_BUNDLES[0])
    bundle["entry"][3]["resource"] = load_example("Observation-ErrorExample-ObsLabo-eGFR.json")
    _, con = run_ingest(write_bundles(inbox, {"obs.json": bundle}), warehouse)
    row = con.execute(
        "SELECT source_file, line_no, entry_index, resource_identifier, institution_number, raw "
        "FROM ops.quarantine WHERE rule_id = 'R9013O'").fetchone()
    assert row[:5] == ("fhir/obs.json", 1, 3, "1318814790-9990767-OBSLAB13883807672021070909210705-2", "1318814790")
    assert "【意図的エラー例】" in row[5]


def test_patient_breaking_its_contract_rejects_the_whole_bundle(examples, inbox, warehouse):
    bundle = load_example(VALID_BUNDLES[0])
    del bundle["entry"][0]["resource"]["gender"]  # 1.. in JP_Patient_eCS; base FHIR allows its absence
    summary, con = run_ingest(write_bundles(inbox, {"obs.json": bundle}), warehouse)
    row = con.execute("SELECT scope, rule_id, message, record_count FROM ops.quarantine").fetchall()
    assert len(row) == 1 and row[0][:2] == ("bundle", "K-CONTRACT") and "gender" in row[0][2]
    assert row[0][3] == 5 and summary["records_quarantined"] == 5


def test_echeckup_sample_loads_all_44_observations(examples, inbox, warehouse):
    """The generic eCheckup profile: no bundle-identifier, the insured person known by Coverage + insurer."""
    bundle = load_example("Bundle-Bundle-eCheckupReport-Sample-01.json")
    summary, con = run_ingest(write_bundles(inbox, {"checkup.json": bundle}), warehouse)
    assert quarantine_rows(con) == [] and summary["records_in"] == len(bundle["entry"])
    assert summary["loaded_by_table"]["core.checkup_result"] == 44
    rows = dict(con.execute("SELECT item_code, value_number FROM core.checkup_result "
                            "WHERE value_type = 'PQ'").fetchall())
    assert rows["9N001000000000001"] == 162.3 and rows["3D046000001906202"] == 7  # 身長, HbA1c
    assert con.execute("SELECT DISTINCT checkup_date::VARCHAR, program, institution_number, category "
                       "FROM core.checkup_result").fetchall() == [("2020-04-04", "010", "1311234567", "checkup")]
