"""The inbox sensor (pipelines/jobs.py): a data engineer's schedule starts a run only when the inbox holds a file
(path, size, mtime) no run has seen — after a run, nothing new means no run; a new or changed file, one run."""

import json

import dagster as dg
import pytest

from pipelines.jobs import inbox_sensor
from pipelines.resources import KarteWarehouse
from tests.conftest import load_example, run_ingest, write_bundles

EXAMPLE = "Bundle-Bundle-CLINS-Observations-Example-01.json"


def _evaluate(inbox, warehouse, archive=None):
    karte = KarteWarehouse(warehouse=str(warehouse), inbox=str(inbox), archive=str(archive or ""))
    return inbox_sensor(dg.build_sensor_context(resources={"karte": karte}))


@pytest.fixture
def sent(examples, inbox):
    return write_bundles(inbox, {"1310000001_20261101_001.json": load_example(EXAMPLE)})


def test_a_missing_inbox_is_a_skip_with_the_reason(tmp_path):
    result = _evaluate(tmp_path / "nowhere", tmp_path / "w.duckdb")
    assert isinstance(result, dg.SkipReason) and "does not exist" in result.skip_message


def test_new_files_start_one_run_and_nothing_new_starts_none(sent, warehouse):
    first = _evaluate(sent, warehouse)  # no warehouse yet: every file is new
    assert isinstance(first, dg.RunRequest) and first.tags["karte/new_files"] == "1"
    assert _evaluate(sent, warehouse).run_key == first.run_key  # the same files ask for the same run

    run_ingest(sent, warehouse)[1].close()
    quiet = _evaluate(sent, warehouse)
    assert isinstance(quiet, dg.SkipReason) and quiet.skip_message == "no new inbox files"

    bundle = load_example(EXAMPLE)
    bundle["id"] = "再送-２"
    (sent / "fhir" / "1310000001_20261102_001.json").write_text(json.dumps(bundle, ensure_ascii=False),
                                                              encoding="utf-8")
    again = _evaluate(sent, warehouse)
    assert isinstance(again, dg.RunRequest) and again.tags["karte/new_files"] == "1"
    assert again.run_key != first.run_key


def test_after_an_archiving_run_the_empty_inbox_starts_nothing(sent, warehouse, tmp_path, monkeypatch):
    monkeypatch.setenv("KARTE_ARCHIVE", str(tmp_path / "archive"))
    summary, con = run_ingest(sent, warehouse)
    con.close()
    assert summary["files_archived"] == 1
    assert isinstance(_evaluate(sent, warehouse, tmp_path / "archive"), dg.SkipReason)
