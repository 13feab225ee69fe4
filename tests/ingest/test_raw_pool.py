"""The raw step reads large batches in a pool of worker processes: what it writes must not depend on that, on
the group size, or on which worker finishes first."""

import json
import shutil
from pathlib import Path

import pytest

from pipelines.config import load_settings
from pipelines.generate import generate
from pipelines.ingest import raw
from pipelines.ingest.landing import land_files
from pipelines.ingest.raw_read import CHECKUP_DOCUMENT, FACILITY_ROW
from pipelines.ingest.run import start_batch
from pipelines.warehouse import connect, raw_lake

TABLES = {
    "raw.resource": "raw_id",
    "raw.bundle": "bundle_key",
    "staging.fast_structure_check": "raw_id",
    "ops.quarantine": "file_id, line_no, rule_id",
}


@pytest.fixture(scope="module")
def inbox(tmp_path_factory) -> Path:
    inbox = tmp_path_factory.mktemp("pool") / "inbox"
    generate(inbox, facilities=3, patients=40, seed=11, fault_rate=0.2)  # faults: quarantined lines too
    return inbox


def _raw(inbox: Path, warehouse: Path, workers: int) -> dict[str, list]:
    settings = load_settings(warehouse=warehouse, inbox=inbox)
    con = connect(settings.warehouse)
    land_files(con, settings.inbox, start_batch(con, str(settings.inbox)))
    written = raw.parse_landed_files(con, settings.inbox, settings.pseudonym_key, precheck=True, workers=workers)
    tables = {t: con.execute(f"SELECT * FROM {t} ORDER BY {order}").fetchall() for t, order in TABLES.items()}
    # stored in raw id order, within each lake file and from file to file (the staging steps read raw id
    # ranges; row group statistics then skip the rest)
    assert con.execute("""SELECT count(*) FROM (
                              SELECT raw_id, lag(raw_id) OVER (ORDER BY filename, file_row_number) AS before
                              FROM read_parquet(?, filename = true, file_row_number = true))
                          WHERE raw_id < before""", [raw_lake.listed_files(con)]).fetchone() == (0,)
    con.close()
    assert written == len(tables["raw.resource"])
    return tables


def test_pooled_reading_writes_exactly_what_one_process_writes(inbox, tmp_path, monkeypatch):
    alone = _raw(inbox, tmp_path / "alone.duckdb", workers=1)
    monkeypatch.setattr(raw, "GROUP_BYTES", 64 * 1024)  # many small groups, so workers overtake each other
    monkeypatch.setattr(raw, "POOL_MIN_BYTES", 0)
    pooled = _raw(inbox, tmp_path / "pooled.duckdb", workers=2)
    assert alone["raw.resource"] and alone["ops.quarantine"]
    for table in TABLES:
        assert pooled[table] == alone[table], table


def test_the_fast_check_runs_on_every_fhir_resource_as_sent(inbox, tmp_path):
    """It sees each resource before sealing and names the path of a problem, never the value."""
    sent = tmp_path / "inbox"
    shutil.copytree(inbox, sent)
    first = min((sent / "fhir").glob("*.json"))
    bundle = json.loads(first.read_text(encoding="utf-8"))
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["name"] = [{"family": ["山田"], "given": ["太郎"]}]  # family is a string, not a list
    first.write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    tables = _raw(sent, tmp_path / "w.duckdb", workers=1)
    fhir = {row[0] for row in tables["raw.resource"] if row[7] not in (FACILITY_ROW, CHECKUP_DOCUMENT)}
    assert {raw_id for raw_id, _ in tables["staging.fast_structure_check"]} == fhir
    problems = [p for _, p in tables["staging.fast_structure_check"] if p]
    assert len(problems) == 1 and problems[0].startswith("name.0.family") and "山田" not in problems[0]


@pytest.mark.parametrize("workers", [1, 2])
def test_forked_is_called_once_after_every_worker_has_started_and_never_without_a_pool(workers):
    """The structure step's models are imported on a thread from this call: a fork after it could copy a
    half-imported module into a worker."""
    import multiprocessing

    seen = []
    buffers = list(raw._read_in_order([[1], [2], [3]], sum, workers,
                                      forked=lambda: seen.append(len(multiprocessing.active_children()))))
    assert buffers == [1, 2, 3]
    assert seen == ([] if workers == 1 else [workers])


def test_the_reading_plan_gives_every_worker_two_groups_of_a_mid_sized_batch():
    mib = 1024**2
    assert raw.reading_plan(1 * mib, workers=2) == (1, raw.GROUP_BYTES)  # an increment: read here, no fork
    assert raw.reading_plan(500 * mib, workers=1) == (1, raw.GROUP_BYTES)
    assert raw.reading_plan(500 * mib, workers=2) == (2, raw.GROUP_BYTES)  # a full load: groups bound memory
    workers, group_bytes = raw.reading_plan(19 * mib, workers=2)  # the 16 x sample's +1 %
    files = [(object(), mib) for _ in range(19)]
    assert workers == 2 and len(list(raw._groups(files, group_bytes))) == 4
