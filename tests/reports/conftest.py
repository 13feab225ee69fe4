"""One generated, ingested sample shared by the adoption report tests (generating it is the slow part)."""

import csv
import json
import shutil
from pathlib import Path

import pytest

from pipelines.generate import generate
from tests.conftest import run_ingest

SIZE = {"facilities": 20, "patients": 200, "seed": 11, "fault_rate": 0.05}


@pytest.fixture(scope="session")
def adoption_sample(tmp_path_factory):
    """(inbox, warehouse path) of a generated sample with injected faults, ingested; the connection is closed."""
    inbox = tmp_path_factory.mktemp("adoption") / "inbox"
    generate(inbox, **SIZE)
    drop_checkups(inbox)
    warehouse = inbox.parent / "adoption.duckdb"
    _, con = run_ingest(inbox, warehouse)
    con.close()
    return inbox, warehouse


@pytest.fixture
def warehouse_copy(adoption_sample, tmp_path):
    """A private copy of the sample warehouse, for tests that write to it."""
    target = tmp_path / "copy.duckdb"
    shutil.copyfile(adoption_sample[1], target)
    return target


def drop_checkups(inbox: Path) -> None:
    """Remove the checkup inputs (eCheckup bundles in fhir/, 特定健診 archives in checkups/) from the sample: their
    ingest and their fault truth are still being built, and the tests here compute their truth from the FHIR
    clinical submissions, the registry and the access log. The report counts checkups by the same staging shape
    (facts._category_tables) once they land."""
    truth = inbox / "_truth" / "checkups.csv"
    files: set[str] = set()
    if truth.exists():
        with open(truth, encoding="utf-8", newline="") as fh:
            files |= {row["file"] for row in csv.DictReader(fh) if row.get("file")}
    manifest = json.loads((inbox / "_manifest.json").read_text(encoding="utf-8"))
    for fault in manifest.get("checkup_faults", []):
        files |= {fault[k] for k in ("file", "duplicate_of") if isinstance(fault.get(k), str)}
    for rel in files:
        (inbox / rel).unlink(missing_ok=True)
    shutil.rmtree(inbox / "checkups", ignore_errors=True)
