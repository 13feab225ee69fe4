"""Archiving (KARTE_ARCHIVE / --archive): a run moves the inbox files it finished out of the inbox, so the next
run scans only what is new; whatever it did not finish, or cannot move, stays where the next run looks."""

import json

import pytest

from pipelines.cli import main
from pipelines.config import load_settings
from pipelines.generate import generate
from pipelines.ingest.archive import ArchiveConfigError, archive_finished_files, archived_name, check_archive
from pipelines.ingest.landing import scan_inbox, sha256_of
from pipelines.ingest.run import ingest
from pipelines.warehouse import connect


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A small generated inbox with injected faults: some files are quarantined whole, which finishes them too."""
    inbox = tmp_path_factory.mktemp("generated") / "inbox"
    generate(inbox, facilities=4, patients=12, seed=11, fault_rate=0.1)
    return inbox


@pytest.fixture
def inbox(generated, tmp_path):
    import shutil

    return shutil.copytree(generated, tmp_path / "inbox")


def _ingest(inbox, warehouse, archive):
    settings = load_settings(warehouse=warehouse, inbox=inbox, archive=archive)
    con = connect(settings.warehouse)
    try:
        return ingest(con, settings)
    finally:
        con.close()


def _contents(folder) -> dict[str, str]:
    return {f.relpath: sha256_of(f.path) for f in scan_inbox(folder)}


def test_a_run_moves_every_file_it_finished_and_the_next_run_scans_nothing(inbox, tmp_path):
    before = _contents(inbox)
    assert len(before) > 20 and {p.split("/")[0] for p in before} >= {"fhir", "consent", "access", "checkups"}
    first = _ingest(inbox, tmp_path / "w.duckdb", tmp_path / "archive")
    assert first.files_archived == len(before) and first.files_kept_in_inbox == []
    assert first.records_quarantined > 0  # the faulty files finished as quarantine rows, and moved too
    assert _contents(inbox) == {}  # `_manifest.json` and `_truth/` are not input: they stay
    assert (inbox / "_manifest.json").exists()
    assert _contents(tmp_path / "archive") == before  # same relative paths, same bytes

    second = _ingest(inbox, tmp_path / "w.duckdb", tmp_path / "archive")
    assert (second.files_seen, second.records_in, second.files_archived) == (0, 0, 0)
    con = connect(tmp_path / "w.duckdb", read_only=True)
    assert con.execute("SELECT count(*) FROM ops.file_sighting_cache").fetchone()[0] == 0  # moved paths forgotten
    con.close()


def test_a_resubmitted_copy_is_removed_and_other_content_under_a_taken_name_is_kept_beside_it(inbox, tmp_path):
    archive = tmp_path / "archive"
    _ingest(inbox, tmp_path / "w.duckdb", archive)
    name = min((archive / "fhir").glob("*.json")).name
    (inbox / "fhir").mkdir(exist_ok=True)
    (inbox / "fhir" / name).write_bytes((archive / "fhir" / name).read_bytes())
    resent = _ingest(inbox, tmp_path / "w.duckdb", archive)
    assert (resent.files_skipped_duplicate, resent.files_removed_as_copies, resent.files_archived) == (1, 1, 0)
    assert not (inbox / "fhir" / name).exists()

    bundle = json.loads((archive / "fhir" / name).read_text(encoding="utf-8"))
    bundle["id"] = "訂正版-２"  # other content under the same file name
    (inbox / "fhir" / name).write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    digest = sha256_of(inbox / "fhir" / name)
    corrected = _ingest(inbox, tmp_path / "w.duckdb", archive)
    assert (corrected.files_ingested, corrected.files_archived) == (1, 1)
    assert sha256_of(archived_name(archive / "fhir" / name, digest)) == digest
    assert archived_name(archive / "fhir" / "a_1.ndjson.gz", "ab" * 32).name == f"a_1.{'ab' * 6}.ndjson.gz"


def test_files_the_run_did_not_finish_stay_in_the_inbox(inbox, tmp_path):
    settings = load_settings(warehouse=tmp_path / "w.duckdb", inbox=inbox)
    con = connect(settings.warehouse)
    ingest(con, settings)
    unfinished = con.execute("SELECT file_id, path FROM ops.file_manifest WHERE kind = 'fhir' ORDER BY file_id "
                             "LIMIT 1").fetchone()
    con.execute("UPDATE ops.file_manifest SET reported_batch_id = NULL WHERE file_id = ?", [unfinished[0]])
    result = archive_finished_files(con, inbox, tmp_path / "archive")
    con.close()
    assert list(_contents(inbox)) == [unfinished[1]]
    assert result.moved == len(_contents(tmp_path / "archive")) > 0


def test_an_archive_set_later_takes_the_finished_files_earlier_runs_left(inbox, tmp_path):
    """Landing records a file left unchanged only once: the archive goes by what the inbox holds, not by this
    run's sightings, so files finished before the archive was set (or before it could move them) go too."""
    before = _contents(inbox)
    _ingest(inbox, tmp_path / "w.duckdb", None)
    later = _ingest(inbox, tmp_path / "w.duckdb", tmp_path / "archive")
    assert (later.files_unchanged, later.records_in) == (len(before), 0)
    assert later.files_archived == len(before) and _contents(inbox) == {}
    assert _contents(tmp_path / "archive") == before


def test_a_file_that_cannot_be_moved_stays_with_the_reason_and_the_run_succeeds(inbox, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "consent").write_text("a file where the archive needs a folder", encoding="utf-8")
    consent_files = [p for p in _contents(inbox) if p.startswith("consent/")]
    summary = _ingest(inbox, tmp_path / "w.duckdb", archive)
    assert [path for path, _ in summary.files_kept_in_inbox] == consent_files
    assert all(why for _, why in summary.files_kept_in_inbox)
    assert list(_contents(inbox)) == consent_files and summary.files_archived > 0


@pytest.mark.parametrize("inside", ["fhir", "fhir/done", "."])
def test_an_archive_the_next_run_would_land_again_is_refused_at_start_up(inbox, tmp_path, capsys, monkeypatch,
                                                                         inside):
    """The settings refuse it, so every entry point does before it touches the warehouse."""
    from pipelines.resources import KarteWarehouse

    archive = (inbox / inside).resolve()
    for command in ("ingest", "run"):
        code = main([command, "--inbox", str(inbox), "--warehouse", str(tmp_path / "w.duckdb"),
                     "--archive", str(archive)])
        assert code != 0 and "archive" in capsys.readouterr().err
    assert not (tmp_path / "w.duckdb").exists()
    with pytest.raises(ArchiveConfigError):  # what the Dagster assets and the sensor read their settings from
        KarteWarehouse(inbox=str(inbox), archive=str(archive)).settings()
    monkeypatch.setenv("KARTE_ARCHIVE", str(archive))
    with pytest.raises(ArchiveConfigError, match="read again|the inbox itself"):
        load_settings(inbox=inbox)
    check_archive(inbox, inbox / "_archive")  # a `_` folder is never input: fine


def test_the_dagster_run_summary_archives_what_the_run_finished(inbox, tmp_path):
    import dagster as dg

    from pipelines.definitions import all_assets
    from pipelines.resources import KarteWarehouse

    before = _contents(inbox)
    karte = KarteWarehouse(warehouse=str(tmp_path / "dagster.duckdb"), inbox=str(inbox),
                           reports=str(tmp_path / "reports"), archive=str(tmp_path / "archive"))
    result = dg.materialize(all_assets, resources={"karte": karte},
                            selection=dg.AssetSelection.groups("landing", "raw", "staging", "core", "ops"),
                            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    assert result.success
    assert {e.check_name for e in result.get_asset_check_evaluations()
            if e.asset_key.path == ["ops", "run_summary"] and e.passed} == {
        "every_record_accounted", "one_outcome_per_record", "no_raw_identifiers"}
    summary = next(e.materialization.metadata["summary"].value for e in result.get_asset_materialization_events()
                   if e.materialization.asset_key == dg.AssetKey(["ops", "run_summary"]))
    assert summary["files_archived"] == len(before) and _contents(inbox) == {}
