"""On generated data: every fault the generator injected is caught with the right rule and outcome, and
nothing else is rejected; without faults nothing is rejected at all."""

import json

import pytest

from pipelines.generate import generate
from tests.conftest import run_ingest, write_bundles

SIZE = {"facilities": 20, "patients": 300, "seed": 7}


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    inbox = tmp_path_factory.mktemp("faulty")
    generate(inbox, fault_rate=0.05, **SIZE)
    summary, con = run_ingest(inbox, inbox.parent / "faulty.duckdb")
    manifest = json.loads((inbox / "_manifest.json").read_text(encoding="utf-8"))
    yield summary, con, manifest["faults"]
    con.close()


def _unit(fault: dict) -> tuple:
    outcome = fault["expected_outcome"]
    if outcome == "quarantine_file":
        return ("file", fault["file"], fault["line"])
    if outcome == "quarantine_bundle":
        return ("bundle", fault["file"], fault["bundle_identifier"])
    return ("resource", fault["file"], fault["resource_identifier"])


def _rejected_units(con) -> dict[tuple, set[str]]:
    """Each rejected unit → the rule that accounts for it (record_count > 0)."""
    units: dict[tuple, set[str]] = {}
    for scope, file, line, bundle_id, resource_id, rule in con.execute(
            "SELECT scope, source_file, line_no, bundle_identifier, resource_identifier, rule_id FROM ops.quarantine "
            "WHERE record_count > 0 OR scope IN ('file', 'line')").fetchall():
        if scope in ("file", "line"):
            key = ("file", file, None)  # a non-UTF-8 NDJSON file is rejected line by line
        elif scope == "bundle":
            key = ("bundle", file, bundle_id)
        else:
            key = ("resource", file, resource_id)
        units.setdefault(key, set()).add(rule)
    return units


def test_every_quarantine_fault_caught_with_its_rule_and_nothing_else(faulty):
    _, con, faults = faulty
    expected = {}
    for fault in faults:
        if fault["expected_outcome"].startswith("quarantine"):
            unit = _unit(fault)
            expected[("file", unit[1], None) if unit[0] == "file" else unit] = {fault["expected_rule"]}
    assert expected, "the generator injected no quarantine faults"
    checkup_rules = ("K-CHECKUP", "K-XML", "K-ZIP")  # checked by test_every_checkup_fault_caught_with_its_rule
    assert {u: r for u, r in _rejected_units(con).items() if not any(x.startswith(checkup_rules) for x in r)} \
        == expected


def test_every_checkup_fault_caught_with_its_rule(faulty):
    """Checkup faults (both forms): rejected at the file, document or item they were injected in."""
    _, con, _ = faulty
    manifest = json.loads((_inbox(con) / "_manifest.json").read_text(encoding="utf-8"))
    expected = {(f["file"], f["expected_rule"], f["document_id"] if f["expected_outcome"] == "quarantine_item" else None)
                for f in manifest["checkup_faults"] if f["expected_outcome"].startswith("quarantine")}
    rules = tuple({f["expected_rule"] for f in manifest["checkup_faults"] if f["expected_rule"]})
    found = {(file, rule, doc if rule in ITEM_RULES else None) for file, rule, doc in con.execute(
        "SELECT DISTINCT source_file, rule_id, resource_identifier FROM ops.quarantine WHERE rule_id IN ?",
        [list(rules)]).fetchall()}
    assert expected and found == expected


ITEM_RULES = {"K-CHECKUP-BP", "K-CHECKUP-RANGE", "K-CHECKUP-ITEM", "K-CHECKUP-BMI"}


def _inbox(con):
    from pathlib import Path
    return Path(con.execute("SELECT inbox FROM ops.batch ORDER BY batch_id LIMIT 1").fetchone()[0])


def test_resubmitted_files_are_skipped(faulty):
    summary, con, faults = faulty
    manifest = json.loads((_inbox(con) / "_manifest.json").read_text(encoding="utf-8"))
    resubmitted = {f["file"] for f in faults + manifest["checkup_faults"]
                   if f["expected_outcome"] == "skipped_duplicate_file"}
    skipped = {p for (p,) in con.execute("SELECT path FROM ops.file_sighting WHERE NOT is_new").fetchall()}
    assert resubmitted and resubmitted == skipped
    assert summary["files_skipped_duplicate"] == len(resubmitted)


def _core_row(con, fault: dict, file_key: str):
    table = {"C": "condition", "A": "allergy", "O": "lab_result", "M": "medication_request"}[
        fault["resource_identifier"].split("-")[1][0]]
    return con.execute(
        f"SELECT c.is_tombstoned, m.path FROM core.{table} c JOIN raw.resource r USING (raw_id) "
        f"JOIN ops.file_manifest m ON m.file_id = r.file_id WHERE c.resource_identifier = ?",
        [fault["resource_identifier"]]).fetchone()


def test_updates_win_and_entered_in_error_becomes_tombstone(faulty):
    summary, con, faults = faulty
    updates = [f for f in faults if f["expected_outcome"] == "superseded"]
    tombstones = [f for f in faults if f["expected_outcome"] == "tombstone"]
    assert updates and tombstones
    for fault in updates:
        assert _core_row(con, fault, "file") == (False, fault["superseded_by"]["file"])
    for fault in tombstones:
        assert _core_row(con, fault, "file") == (True, fault["file"])
    assert summary["records_tombstoned"] == len(tombstones)


def test_counts_balance(faulty):
    summary, con, _ = faulty
    assert summary["records_in"] == (summary["records_loaded"] + summary["records_quarantined"]
                                     + summary["records_duplicate"] + summary["records_tombstoned"])
    assert con.execute("SELECT count(*) FROM raw.resource ANTI JOIN ops.record_outcome USING (raw_id)").fetchone() == (0,)


def test_clean_sample_rejects_nothing(tmp_path):
    generate(tmp_path / "clean", fault_rate=0.0, **SIZE)
    summary, con = run_ingest(tmp_path / "clean", tmp_path / "clean.duckdb")
    assert con.execute("SELECT rule_id, message FROM ops.quarantine LIMIT 5").fetchall() == []
    assert summary["records_quarantined"] == 0 and summary["records_tombstoned"] == 0
    tables = summary["loaded_by_table"]
    for table in ("core.condition", "core.allergy", "core.lab_result", "core.medication_request", "core.document",
                  "core.patient", "core.facility", "core.consent_event", "core.access_event"):
        assert tables.get(table, 0) > 0, table



def test_every_bundle_entry_is_one_raw_record(tmp_path):
    """raw.bundle.entry_count is the number of raw.resource rows of its bundle, malformed entries included: the
    adoption report counts a bundle's records received from it (pipelines/reports/adoption/facts.py)."""
    inbox = tmp_path / "inbox"
    generate(inbox, fault_rate=0.05, facilities=3, patients=20, seed=11)
    odd = {"resourceType": "Bundle", "type": "document", "timestamp": "2026-04-01T10:00:00+09:00"}
    write_bundles(inbox, {
        "1311234567_20260401_empty.json": {**odd, "entry": []},
        "1311234567_20260401_odd.json": {**odd, "entry": [
            {"fullUrl": "urn:uuid:0b1c2d3e-0000-4000-8000-000000000001"},  # no resource
            "not an entry",
            {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female"}}]},
    })
    _, con = run_ingest(inbox, tmp_path / "w.duckdb")
    mismatched = con.execute("""
        SELECT b.bundle_key, b.entry_count, count(r.raw_id) AS raw_rows
        FROM raw.bundle b LEFT JOIN raw.resource r USING (bundle_key)
        GROUP BY ALL HAVING b.entry_count <> count(r.raw_id)""").fetchall()
    assert not mismatched
    assert con.execute("SELECT list(entry_count ORDER BY entry_count) FROM raw.bundle b JOIN ops.file_manifest m "
                       "USING (file_id) WHERE m.path LIKE '%1311234567_20260401_%'").fetchone()[0] == [0, 3]
    con.close()
