"""A generated sample, ingested once for the audit tests (faults on: the truth must survive quarantines)."""

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from pipelines.generate import generate
from tests.conftest import run_ingest

SMALL = {"facilities": 20, "patients": 300, "seed": 11, "fault_rate": 0.05}


@dataclass
class Sample:
    inbox: Path
    warehouse: Path
    manifest: dict
    con: object

    @property
    def end(self) -> date:
        return date.fromisoformat(self.manifest["parameters"]["end"])


def make_sample(root: Path, **size) -> Sample:
    inbox = root / "inbox"
    generate(inbox, **size)
    _, con = run_ingest(inbox, root / "warehouse.duckdb")
    manifest = json.loads((inbox / "_manifest.json").read_text(encoding="utf-8"))
    return Sample(inbox, root / "warehouse.duckdb", manifest, con)


@pytest.fixture(scope="session")
def audit_sample(tmp_path_factory) -> Sample:
    sample = make_sample(tmp_path_factory.mktemp("audit"), **SMALL)
    yield sample
    sample.con.close()
