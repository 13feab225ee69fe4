"""The structure step's two modes on the same bytes: `fast` (the default: schema check on every resource,
fhir.resources on rejects, first files and a sample) gives the verdicts `strict` (fhir.resources on every
resource) gives, and its counters say how each verdict was reached."""

import gzip
import json
from pathlib import Path

import pytest

from pipelines.config import load_settings
from pipelines.generate import generate
from pipelines.ingest import structure
from pipelines.ingest.reader import read_bytes
from pipelines.warehouse import connect
from tests.conftest import run_ingest, run_structure_step

BAD_DATE = "2025/01/15"  # both checkers reject it
#: the resources a corruption marked: (SQL condition on raw.resource, ...)
MARKED_BAD_DATE = f"json_extract_string(r.resource, '$.effectiveDateTime') = '{BAD_DATE}'"
MARKED_COLOUR = "json_extract_string(r.resource, '$.colour') IS NOT NULL"


def _bundles(path: Path) -> list[dict]:
    data = read_bytes(path)
    return [json.loads(line) for line in data.splitlines() if line.strip()] if ".ndjson" in path.name \
        else [json.loads(data)]


def _rewrite(path: Path, change) -> int:
    """Apply `change` to every entry resource in the file at `path` (any of the inbox's bundle forms); returns
    how many it changed (`change` returns True when it changed one)."""
    bundles = _bundles(path)
    changed = sum(bool(change(e["resource"])) for b in bundles for e in b["entry"])
    text = "\n".join(json.dumps(b, ensure_ascii=False) for b in bundles).encode("utf-8")
    path.write_bytes(gzip.compress(text) if path.name.endswith(".gz") else text)
    return changed


def _bad_date(resource: dict) -> bool:
    if resource["resourceType"] == "Observation":
        resource["effectiveDateTime"] = BAD_DATE
        return True
    return False


def _quoted_number(resource: dict) -> bool:
    """A decimal as a JSON string: the fast check rejects it, fhir.resources (pydantic) accepts it."""
    if "valueQuantity" in resource:
        resource["valueQuantity"]["value"] = str(resource["valueQuantity"]["value"])
        return True
    return False


def _colour(resource: dict) -> bool:
    resource["colour"] = "red"
    return True


def _sender_files(inbox: Path) -> list[Path]:
    """The first sender's bundle files, in landing order (file ids follow the path order)."""
    files = sorted((inbox / "fhir").iterdir())
    return [f for f in files if f.name.split("_")[0] == files[0].name.split("_")[0]]


@pytest.fixture(scope="module")
def inbox(tmp_path_factory) -> Path:
    """A generated inbox whose first sender has, after its first file, one file of Observations with a bad
    date and one with quoted numbers."""
    inbox = tmp_path_factory.mktemp("modes") / "inbox"
    generate(inbox, facilities=2, patients=12, seed=5, fault_rate=0.0)
    later = iter(_sender_files(inbox)[1:])
    assert any(_rewrite(f, _bad_date) for f in later)
    assert any(_rewrite(f, _quoted_number) for f in later)
    return inbox


def _structure_step(inbox: Path, warehouse: Path, mode: str) -> tuple[structure.StructureOutcome, dict, set]:
    """Landing and raw steps, then the structure step in `mode`: (its outcome, {raw_id: error}, the raw_ids of
    resources marked bad)."""
    outcome = run_structure_step(inbox, warehouse, mode)
    con = connect(warehouse, read_only=True)
    failures = dict(con.execute("SELECT raw_id, structure_error FROM staging.structure_failure").fetchall())
    marked = {raw_id for (raw_id,) in con.execute(
        f"SELECT raw_id FROM raw.resource r WHERE {MARKED_BAD_DATE} OR {MARKED_COLOUR}").fetchall()}
    con.close()
    return outcome, failures, marked


def test_fast_mode_gives_the_strict_verdicts_with_fhir_resources_messages(inbox, tmp_path):
    strict, strict_failures, marked = _structure_step(inbox, tmp_path / "strict.duckdb", "strict")
    fast, fast_failures, _ = _structure_step(inbox, tmp_path / "fast.duckdb", "fast")
    assert marked and set(fast_failures) == set(strict_failures) == marked
    assert fast_failures == strict_failures  # the message of record is fhir.resources' in both modes
    assert all("effectiveDateTime" in error and BAD_DATE not in error for error in fast_failures.values())
    assert strict.checked == fast.checked == strict.by_fhir_resources
    assert fast.failing == strict.failing == len(marked)
    # the quoted numbers: rejected by the fast check, accepted (overruled) by fhir.resources
    assert fast.overruled >= 1 and fast.missed == 0
    assert fast.by_fhir_resources < fast.checked / 2
    assert tuple(fast) == (fast.checked, fast.failing)  # what the Dagster asset unpacks


def test_fast_mode_quarantines_with_k_fhir_structure(inbox, tmp_path):
    summary, con = run_ingest(inbox, tmp_path / "w.duckdb")
    rows = con.execute("SELECT resource_type, message FROM ops.quarantine WHERE rule_id = 'K-FHIR-STRUCTURE'"
                       ).fetchall()
    con.close()
    assert rows and {r[0] for r in rows} == {"Observation"}
    assert all("effectiveDateTime" in message for _, message in rows)
    assert summary["records_quarantined"] >= len(rows)
    assert summary["records_in"] == (summary["records_loaded"] + summary["records_quarantined"]
                                     + summary["records_duplicate"] + summary["records_tombstoned"])


@pytest.fixture
def stale_fast_check(monkeypatch):
    """A fast check that passes everything, as a schema out of step with fhir.resources would."""
    monkeypatch.setattr(structure.structure_schema, "structure_problem", lambda resource: None)


def test_with_a_stale_fast_check_the_sample_still_catches_some(inbox, tmp_path, stale_fast_check, monkeypatch):
    monkeypatch.setattr(structure, "SAMPLE_EVERY", 2)  # a bigger sample than the default, so this little data shows it
    outcome, failures, marked = _structure_step(inbox, tmp_path / "stale.duckdb", "fast")
    con = connect(tmp_path / "stale.duckdb")
    sampled = {raw_id for (raw_id,) in con.execute(
        f"SELECT raw_id FROM raw.resource r WHERE {MARKED_BAD_DATE} "
        f"AND hash(r.raw_id) % {structure.SAMPLE_EVERY} = 0").fetchall()}
    con.close()
    assert sampled and sampled < marked
    assert set(failures) == sampled  # only there: the fast check is what guards the rest
    assert outcome.missed == len(sampled) and outcome.overruled == 0


def test_a_sources_first_file_is_checked_in_full(inbox, tmp_path, stale_fast_check):
    first = _sender_files(inbox)[0]
    original = first.read_bytes()
    try:
        _rewrite(first, _colour)
        outcome, failures, _ = _structure_step(inbox, tmp_path / "first.duckdb", "fast")
        assert outcome.missed >= 1  # the stale check passed them; fhir.resources did not
        con = connect(tmp_path / "first.duckdb")
        coloured = {raw_id for (raw_id,) in con.execute(
            f"SELECT raw_id FROM raw.resource r WHERE {MARKED_COLOUR}").fetchall()}
        con.close()
    finally:
        first.write_bytes(original)
    assert coloured and coloured <= set(failures)
    assert all("colour" in failures[raw_id] for raw_id in coloured)


@pytest.mark.parametrize(("given", "resolved"), [("fast", "fast"), ("strict", "strict"), ("all", "strict"),
                                                 ("sample", "fast")])
def test_modes_and_their_old_names(given, resolved, tmp_path):
    con = connect(tmp_path / "w.duckdb")
    assert structure.stage_structure(con, given).mode == resolved
    con.close()


@pytest.mark.parametrize("mode", ["off", "ALL", ""])
def test_unknown_mode_is_a_clear_error(mode, tmp_path):
    con = connect(tmp_path / "w.duckdb")
    with pytest.raises(ValueError, match="KARTE_STRUCTURE_VALIDATION must be fast or strict"):
        structure.stage_structure(con, mode)
    con.close()


def test_default_mode_is_fast(monkeypatch):
    monkeypatch.delenv("KARTE_STRUCTURE_VALIDATION", raising=False)
    assert load_settings().structure_validation == "fast"


def test_fast_mode_in_a_process_pool_gives_the_same_verdicts(monkeypatch):
    texts = [json.dumps({"resourceType": "Observation", "status": "final", "code": {"text": str(i)},
                         "valueInteger": i if i % 7 else "7"}) for i in range(1, 400)]
    texts[5] = texts[5].replace('"final"', '" final"')
    full = [i % 3 == 0 for i in range(len(texts))]
    in_process = structure.check_structure_fast(texts, full)
    monkeypatch.setattr(structure, "FAST_POOL_THRESHOLD", 10)
    assert structure.check_structure_fast(texts, full, workers=2) == in_process
    how = [h for _, h in in_process]
    assert how.count(structure.OVERRULED) == sum(1 for i in range(1, 400) if i % 7 == 0)
    assert in_process[5][0] is not None and in_process[5][1] == structure.CONFIRMED
