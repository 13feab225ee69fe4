"""The raw vault (pipelines/ingest/vault.py): what a resource keeps in clear, what it seals, malformed shapes,
and reading tokens back."""

import os
import subprocess
import sys

import orjson
import polars as pl
import pytest

from pipelines.config import load_settings
from pipelines.fhir import systems as S
from pipelines.ingest import vault
from pipelines.ingest.pseudonym import patient_key
from tests.conftest import EXAMPLES, load_example, run_ingest, write_bundles

KEY = b"test-key-for-the-vault-0123456789"
MEMBER = "00012345:あいう:１８７:05"
OBSERVATIONS = "Bundle-Bundle-CLINS-Observations-Example-01.json"


def _patient() -> dict:
    return {
        "resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-02-03",
        "identifier": [{"system": S.INSURANCE_MEMBER_ID, "value": MEMBER},
                       {"system": "urn:oid:1.2.392.100495.20.3.51.11318814790", "value": "000123456"}],
        "name": [{"use": "official", "extension": [{"url": S.EXT_EN_REPRESENTATION, "valueCode": "IDE"}],
                  "text": "山田\u3000花子", "family": "山田", "given": ["花子"]}],
        "telecom": [{"system": "phone", "value": "03-1234-5678", "use": "home"}, {"system": "phone", "value": 9012345678}],
        "address": [{"text": "東京都千代田区一番町1-2", "postalCode": "102-0082", "state": "東京都", "city": "千代田区",
                     "line": ["一番町1-2"]}],
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">山田 花子</div>'},
    }


def _clear_values(resource: object) -> str:
    return orjson.dumps(resource).decode()


def test_a_whole_text_is_sealed_without_being_cached():
    """A CDA document is sealed once: keeping each (document and token) in the seal cache made the raw step's
    memory grow with the number of documents."""
    document = "<ClinicalDocument>" + "山田 花子 " * 2000 + "</ClinicalDocument>"
    cache = vault.vault_for(KEY).seal
    before = cache.cache_info().currsize
    token = vault.seal(document, KEY)
    assert cache.cache_info().currsize == before
    assert vault.reveal_text(token, KEY) == document and vault.seal(document, KEY) == token


def test_tokens_are_deterministic_authenticated_and_keyed():
    token = vault.seal(MEMBER, KEY)
    assert token.startswith(vault.PREFIX) and token == vault.seal(MEMBER, KEY)
    assert vault.seal(MEMBER, KEY + b"x") != token
    assert vault.reveal(token, KEY) == MEMBER
    with pytest.raises(vault.VaultError, match="KARTE_PSEUDONYM_KEY"):
        vault.reveal(token, KEY + b"x")
    with pytest.raises(vault.VaultError):
        vault.reveal(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], KEY)
    with pytest.raises(vault.VaultError):
        vault.reveal(MEMBER, KEY)
    assert vault.vault_key(KEY) != KEY and len(vault.vault_key(KEY)) == 64


def test_patient_keeps_demographics_and_seals_who_it_is():
    sealed = vault.seal_resource(_patient(), KEY)
    text = _clear_values(sealed)
    for value in (MEMBER, "000123456", "山田", "花子", "03-1234-5678", "9012345678", "東京都千代田区", "102-0082",
                  "一番町", "千代田区"):
        assert value not in text, value
    assert sealed["gender"] == "female" and sealed["birthDate"] == "1980-02-03"
    assert sealed["address"][0]["state"] == "東京都"
    assert sealed["identifier"][0]["system"] == S.INSURANCE_MEMBER_ID
    assert sealed["name"][0]["extension"][0]["valueCode"] == "IDE" and sealed["name"][0]["use"] == "official"
    assert vault.reveal(sealed["identifier"][0]["value"], KEY) == MEMBER
    assert vault.reveal(sealed["name"][0]["text"], KEY) == "山田\u3000花子"
    # a number where a string belongs stays a non-string (the structure check still rejects it)
    assert set(sealed["telecom"][1]["value"]) == {vault.WRAPPED}
    assert sealed["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">kvault:v1:')


@pytest.mark.parametrize("bad", [
    {"resourceType": "Patient", "identifier": MEMBER, "name": {"text": "山田 花子"}, "telecom": ["03-1234-5678"]},
    {"resourceType": "Patient", "identifier": [MEMBER, None, 5], "name": [["山田 花子"]], "address": "東京都千代田区"},
    {"resourceType": "Patient", "name": [{"use": "山田 花子", "period": {"start": "山田"}}],
     "address": [{"state": "東京都千代田区一番町", "type": "千代田区"}], "contact": [{"relationship": "山田"}]},
    {"resourceType": "Coverage", "identifier": {"value": MEMBER}, "subscriberId": MEMBER,
     "extension": [{"url": "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Coverage_InsuredPersonNumber",
                    "valueString": "１８７"}, "junk"]},
    {"resourceType": "Consent", "patient": {"identifier": {"value": MEMBER}, "display": "山田 花子"},
     "performer": [{"identifier": {"system": S.INSURANCE_MEMBER_ID, "value": MEMBER}}, "junk"]},
])
def test_malformed_shapes_are_sealed_not_crashed(bad):
    text = _clear_values(vault.seal_resource(bad, KEY))
    for value in (MEMBER, "山田", "03-1234-5678", "千代田区", "１８７"):
        assert value not in text, value


def test_audit_event_seals_the_patient_not_the_facility():
    event = {"resourceType": "AuditEvent",
             "agent": [{"who": {"identifier": {"system": S.INSTITUTION_NO, "value": "1318814790"}}}],
             "entity": [{"what": {"identifier": {"system": S.INSURANCE_MEMBER_ID, "value": MEMBER}},
                         "role": {"code": "1"}},
                        {"what": {"identifier": {"system": S.RESOURCE_INSTANCE_ID, "value": "1318814790-C1"}}}]}
    sealed = vault.seal_resource(event, KEY)
    assert MEMBER not in _clear_values(sealed)
    assert sealed["agent"][0]["who"]["identifier"]["value"] == "1318814790"
    assert sealed["entity"][1]["what"]["identifier"]["value"] == "1318814790-C1"


def test_clinical_resources_seal_patient_and_staff_names_only():
    condition = {"resourceType": "MedicationRequest", "status": "completed",
                 "subject": {"identifier": {"system": S.INSURANCE_MEMBER_ID, "value": MEMBER}},
                 "requester": {"reference": "#prescriber", "display": "田村 蓮"},
                 "contained": [{"resourceType": "Practitioner", "id": "prescriber",
                                "identifier": [{"value": "D005"}], "name": [{"text": "田村 蓮"}]}],
                 "medicationCodeableConcept": {"text": "【般】フェキソフェナジン塩酸塩錠６０ｍｇ"}}
    sealed = vault.seal_resource(condition, KEY)
    text = _clear_values(sealed)
    assert MEMBER not in text and "田村" not in text
    assert "フェキソフェナジン" in text and sealed["contained"][0]["identifier"][0]["value"] == "D005"
    assert sealed["requester"]["reference"] == "#prescriber"


def test_reveal_series_maps_strings_and_lists_and_passes_clear_values():
    token = vault.seal(MEMBER, KEY)
    assert vault.reveal_series(pl.Series([token, None, "clear", token]), KEY).to_list() == [MEMBER, None, "clear",
                                                                                          MEMBER]
    lists = pl.Series([[token, "x"], None, []], dtype=pl.List(pl.String))
    assert vault.reveal_series(lists, KEY).to_list() == [[MEMBER, "x"], None, []]


def test_a_changed_key_stops_ingest_with_a_clear_message(tmp_path):
    """Raw sealed under one key, then staged under another (a run killed after raw, resumed with a new
    KARTE_PSEUDONYM_KEY): a one-line error naming the key, exit 1 — never rows staged under the wrong key."""
    if not EXAMPLES.is_dir():
        pytest.skip(f"official JP-CLINS examples not found at {EXAMPLES} (set KARTE_SHARED to the shared/ folder)")
    inbox, warehouse = tmp_path / "inbox", tmp_path / "w.duckdb"
    (inbox / "fhir").mkdir(parents=True)
    (inbox / "fhir" / "a.json").write_bytes((EXAMPLES / OBSERVATIONS).read_bytes())
    karte = [sys.executable, "-m", "pipelines.cli", "ingest", "--inbox", str(inbox), "--warehouse", str(warehouse)]
    env = {**os.environ, "KARTE_PSEUDONYM_KEY": "the-first-key-0123456789abcdef"}
    died = subprocess.run(karte, env={**env, "KARTE_TEST_CRASH_AFTER": "raw.resource"}, capture_output=True,
                          text=True, check=False)
    assert died.returncode == 137, died.stderr[-2000:]
    resumed = subprocess.run(karte, env={**env, "KARTE_PSEUDONYM_KEY": "another-key-0123456789abcdef"},
                             capture_output=True, text=True, check=False)
    assert resumed.returncode == 1 and "KARTE_PSEUDONYM_KEY" in resumed.stderr
    assert "Traceback" not in resumed.stderr and len(resumed.stderr.strip().splitlines()) == 1
    again = subprocess.run(karte, env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr[-2000:]


def _with_patient(bundle: dict, **fields) -> dict:
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"].update(fields)
    return bundle


def test_patient_rules_read_the_revealed_values_and_quarantine_keeps_them_sealed(examples, inbox, warehouse):
    """R1013 (member id shape) and R1113 (U+3000 in a name) still fire on sealed input; their messages and the
    quarantined bundle show no value; a clean bundle still derives its prefecture and patient key."""
    clean = load_example(OBSERVATIONS)
    patient = next(e["resource"] for e in clean["entry"] if e["resource"]["resourceType"] == "Patient")
    member = next(i["value"] for i in patient["identifier"] if i["system"] == S.INSURANCE_MEMBER_ID)
    bad_id = _with_patient(load_example(OBSERVATIONS), identifier=[{"system": S.INSURANCE_MEMBER_ID,
                                                                    "value": "1234:ちがう:99"}])
    bad_id["identifier"]["value"] = bad_id["identifier"]["value"][:-1] + "8"
    spaced = _with_patient(load_example(OBSERVATIONS), name=[{"text": "牧野\u3000爛漫"}])
    spaced["identifier"]["value"] = spaced["identifier"]["value"][:-1] + "9"
    write_bundles(inbox, {"clean.json": clean, "bad_id.json": bad_id, "spaced.json": spaced})
    _, con = run_ingest(inbox, warehouse)
    rows = con.execute("SELECT source_file, rule_id, message, raw FROM ops.quarantine WHERE scope = 'bundle' "
                       "ORDER BY 1").fetchall()
    assert [(r[0].split("/")[-1], r[1]) for r in rows] == [("bad_id.json", "R1013"), ("spaced.json", "R1113")]
    assert rows[0][2].endswith(": value shaped 9999:xxx:99")
    for _, _, message, raw in rows:
        for value in ("1234:ちがう:99", "牧野", "爛漫", member, "03-123-1234", "五台山"):
            assert value not in message and value not in raw
        assert vault.PREFIX in raw
    key = load_settings().pseudonym_key
    staged = con.execute("SELECT prefecture_name, patient_key FROM staging.patient").fetchall()
    con.close()
    assert staged == [("高知県", patient_key(member, key))]
