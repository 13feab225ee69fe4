"""Landing: new content gets a manifest row; what a run records follows what arrived or changed, not what the
inbox keeps; a path whose file went away, or could not be read, is read again rather than trusted."""

import os
import shutil

import pytest

from pipelines.ingest import landing
from pipelines.ingest.landing import LandingResult, land_files, landing_result
from pipelines.ingest.run import start_batch
from pipelines.warehouse import connect

# real-shaped lines: a consent line and a referral bundle carrying kanji and full-width digits
CONSENT = '{"resourceType": "Consent", "id": "同意-１", "status": "active"}\n'
BUNDLE = '{"resourceType": "Bundle", "type": "document", "identifier": {"value": "紹介状-０００１"}}\n'


@pytest.fixture
def con(warehouse):
    con = connect(warehouse)
    yield con
    con.close()


def _land(con, inbox) -> tuple[int, LandingResult]:
    batch_id = start_batch(con, str(inbox))
    return batch_id, land_files(con, inbox, batch_id)


def _sightings(con, batch_id) -> dict[str, bool]:
    return dict(con.execute("SELECT path, is_new FROM ops.file_sighting WHERE batch_id = ?", [batch_id]).fetchall())


def _write(inbox, relpath: str, text: str):
    path = inbox / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_rerun_records_only_what_arrived_or_changed(con, inbox):
    _write(inbox, "fhir/0112345678_紹介.ndjson", BUNDLE)
    _write(inbox, "fhir/0198765432_退院.ndjson", BUNDLE.replace("０００１", "０００２"))
    _write(inbox, "consent/同意.ndjson", CONSENT)
    first_id, first = _land(con, inbox)
    assert first == LandingResult(files_seen=3, files_new=3, files_skipped_duplicate=0, files_unchanged=0)

    second_id, second = _land(con, inbox)
    assert second == LandingResult(files_seen=3, files_new=0, files_skipped_duplicate=3, files_unchanged=3)
    assert _sightings(con, second_id) == {}  # nothing arrived: nothing recorded
    assert landing_result(con, second_id) == second  # kept on ops.batch for the run summary

    _write(inbox, "fhir/0112345678_紹介.ndjson", BUNDLE.replace("０００１", "０００３"))  # changed in place
    shutil.copy(inbox / "consent/同意.ndjson", inbox / "consent/同意-再送.ndjson")  # a resubmitted copy
    third_id, third = _land(con, inbox)
    assert third == LandingResult(files_seen=4, files_new=1, files_skipped_duplicate=3, files_unchanged=2)
    assert _sightings(con, third_id) == {"fhir/0112345678_紹介.ndjson": True, "consent/同意-再送.ndjson": False}
    assert con.execute("SELECT count(*) FROM ops.file_sighting").fetchone()[0] == 5
    assert con.execute("SELECT count(*) FROM ops.file_manifest").fetchone()[0] == 4
    assert landing_result(con, first_id) == first


def test_a_path_whose_file_went_away_is_read_again_even_with_the_same_size_and_mtime(con, inbox):
    path = _write(inbox, "fhir/0112345678_紹介.ndjson", BUNDLE)
    stamp = path.stat().st_mtime_ns
    _land(con, inbox)
    path.unlink()
    _, gone = _land(con, inbox)
    assert gone.files_seen == 0
    assert con.execute("SELECT count(*) FROM ops.file_sighting_cache").fetchone()[0] == 0

    # other content of the same length, copied in with its mtime kept (cp -p, rsync -t)
    _write(inbox, "fhir/0112345678_紹介.ndjson", BUNDLE.replace("０００１", "０００９"))
    os.utime(path, ns=(stamp, stamp))
    batch_id, back = _land(con, inbox)
    assert (back.files_new, back.files_unchanged) == (1, 0)
    assert _sightings(con, batch_id) == {"fhir/0112345678_紹介.ndjson": True}


def test_a_file_that_could_not_be_read_is_read_again_on_the_next_run(con, inbox, monkeypatch):
    _write(inbox, "consent/同意.ndjson", CONSENT)
    hash_file = landing.sha256_of

    def unreadable(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(landing, "sha256_of", unreadable)
    _, first = _land(con, inbox)
    assert first.files_new == 1  # landed as unreadable: the raw step quarantines it with K-FILE-READ
    assert con.execute("SELECT sha256 FROM ops.file_manifest").fetchall() == [("unreadable:consent/同意.ndjson",)]

    monkeypatch.setattr(landing, "sha256_of", hash_file)  # the permission was fixed; size and mtime unchanged
    batch_id, second = _land(con, inbox)
    assert (second.files_new, second.files_unchanged) == (1, 0)
    assert con.execute("SELECT sha256 FROM ops.file_manifest WHERE batch_id = ?", [batch_id]).fetchone() == (
        hash_file(inbox / "consent/同意.ndjson"),)


def test_a_warehouse_from_before_the_counts_reads_zeros(con, inbox):
    con.execute("INSERT INTO ops.batch (batch_id, started_at, inbox) VALUES (7, now()::TIMESTAMP, '受信箱')")
    assert landing_result(con, 7) == LandingResult(0, 0, 0, 0)
    assert landing_result(con, 99) == LandingResult(0, 0, 0, 0)


def test_the_scan_lists_files_in_path_order_component_by_component(inbox):
    """Path order compares paths component by component (a folder's files before a sibling named like it plus a
    suffix), which is not the order of the joined strings ("/" sorts after "-" and "."); hidden names are skipped."""
    for relpath in ("fhir/b.json", "fhir/a.json", "fhir/a-b.json", "fhir/a/z.json", "fhir/_held/x.json",
                    "fhir/.partial.json", "consent/同意.ndjson"):
        _write(inbox, relpath, BUNDLE if relpath.startswith("fhir") else CONSENT)
    listed = [f.relpath for f in landing.scan_inbox(inbox)]
    assert listed == ["fhir/a/z.json", "fhir/a-b.json", "fhir/a.json", "fhir/b.json", "consent/同意.ndjson"]
    assert listed[:4] == sorted(listed[:4], key=lambda path: path.split("/")) != sorted(listed[:4])
