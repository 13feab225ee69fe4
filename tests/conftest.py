"""Shared fixtures: the third-party fixtures in ../shared (read in place, skipped when absent) and
throw-away warehouses and inboxes."""

import json
import os
from pathlib import Path

import pytest

from pipelines.config import PROJECT_ROOT, load_settings
from pipelines.ingest.run import ingest
from pipelines.warehouse import connect

SHARED = Path(os.environ.get("KARTE_SHARED", PROJECT_ROOT.parent / "shared"))
EXAMPLES = SHARED / "fixtures" / "jp-clins" / "examples"


@pytest.fixture(scope="session")
def examples() -> Path:
    if not EXAMPLES.is_dir():
        pytest.skip(f"official JP-CLINS examples not found at {EXAMPLES} (set KARTE_SHARED to the shared/ folder)")
    return EXAMPLES


def load_example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def write_bundles(inbox: Path, bundles: dict[str, dict]) -> Path:
    """Write {file name: bundle} into inbox/fhir/ as UTF-8 JSON."""
    (inbox / "fhir").mkdir(parents=True, exist_ok=True)
    for name, bundle in bundles.items():
        (inbox / "fhir" / name).write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    return inbox


def run_ingest(inbox: Path, warehouse: Path) -> tuple[dict, object]:
    """Ingest `inbox` into `warehouse`; returns (summary dict, open connection)."""
    settings = load_settings(warehouse=warehouse, inbox=inbox)
    con = connect(settings.warehouse)
    return ingest(con, settings).as_dict(), con


def run_structure_step(inbox: Path, warehouse: Path, mode: str = "fast"):
    """Land `inbox` into `warehouse`, then the raw step and the structure step in `mode` alone: returns the
    structure step's outcome (pipelines.ingest.structure.StructureOutcome); the warehouse is closed after."""
    from pipelines.ingest import structure
    from pipelines.ingest.landing import land_files
    from pipelines.ingest.run import processing_steps, start_batch

    settings = load_settings(warehouse=warehouse, inbox=inbox)
    con = connect(settings.warehouse)
    try:
        land_files(con, settings.inbox, start_batch(con, str(settings.inbox)))
        dict(processing_steps(settings))["raw.resource"](con)
        return structure.stage_structure(con, mode)
    finally:
        con.close()


@pytest.fixture
def warehouse(tmp_path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture
def inbox(tmp_path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path
