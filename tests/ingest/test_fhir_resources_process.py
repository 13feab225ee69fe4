"""The run's fhir.resources process (pipelines/ingest/structure.py `fhir_resources_process`): the fast structure
check's fhir.resources work runs there and gives the verdicts this process gives, a process that died is replaced
by this process's own check, and a raw step with a reading pool of its own ends it."""

import copy
import os
import signal

import orjson

from pipelines.config import load_settings
from pipelines.generate import generate
from pipelines.ingest import raw, structure
from pipelines.ingest.landing import land_files
from pipelines.ingest.run import start_batch
from pipelines.warehouse import connect
from tests.conftest import run_structure_step
from tests.ingest.test_structure_schema import OBSERVATION


def _texts() -> tuple[list[str], list[bool]]:
    """Resources fhir.resources passes and rejects, each with the full check asked for or not."""
    bad = copy.deepcopy(OBSERVATION)
    bad["status"] = 5
    unknown = copy.deepcopy(OBSERVATION)
    unknown["colour"] = "赤"
    texts = [orjson.dumps(r).decode() for r in (OBSERVATION, bad, unknown)] + ["{", '{"resourceType": "Nothing"}']
    return texts * 2, [True] * 5 + [False] * 5


def test_the_process_gives_this_process_verdicts(monkeypatch):
    texts, full = _texts()
    alone = structure.check_structure_fast(texts, full)
    structure.start_fhir_resources_process()
    assert structure._validator is None  # only inside a run's fhir_resources_process
    with structure.fhir_resources_process():
        structure.start_fhir_resources_process()
        validator = structure._validator
        assert structure.check_structure_fast(texts, full) == alone
        assert structure._validator is None and validator._shutdown_thread  # its work done, the process ends
    assert [how for _, how in alone].count(structure.CONFIRMED) >= 4
    assert {error is None for error, _ in alone} == {True, False}
    # the work ran there: a verdict that names the process making it (the fork inherits the patch)
    monkeypatch.setattr(structure, "fhir_resources_error", lambda obj: f"pid {os.getpid()}")
    with structure.fhir_resources_process():
        structure.start_fhir_resources_process()
        made_by = {error for error, _ in structure.check_structure_fast(texts, [True] * len(texts))}
    assert len(made_by) == 1 and made_by != {f"pid {os.getpid()}"}


def test_a_process_that_died_is_replaced_by_this_process_check():
    texts, full = _texts()
    alone = structure.check_structure_fast(texts, full)
    with structure.fhir_resources_process():
        structure.start_fhir_resources_process()
        structure._validator.submit(int).result()  # started
        for process in list(structure._validator._processes.values()):
            os.kill(process.pid, signal.SIGKILL)
            process.join()
        assert structure.check_structure_fast(texts, full) == alone


def test_a_run_uses_it_for_a_small_batch_and_a_reading_pool_ends_it(tmp_path, monkeypatch):
    generate(tmp_path / "inbox", facilities=2, patients=6, seed=3, fault_rate=0.2)
    alone = run_structure_step(tmp_path / "inbox", tmp_path / "alone.duckdb")
    with structure.fhir_resources_process():
        structure.start_fhir_resources_process()
        used = run_structure_step(tmp_path / "inbox", tmp_path / "small.duckdb")
        assert structure._validator is None  # the structure step used it, then ended it
    assert used == alone and alone.by_fhir_resources > 0
    monkeypatch.setattr(raw, "POOL_MIN_BYTES", 0)
    settings = load_settings(warehouse=tmp_path / "pool.duckdb", inbox=tmp_path / "inbox")
    con = connect(settings.warehouse)
    with structure.fhir_resources_process():
        land_files(con, settings.inbox, start_batch(con, str(settings.inbox)),
                   on_new_file=structure.start_fhir_resources_process)
        assert structure._validator is not None
        raw.parse_landed_files(con, settings.inbox, settings.pseudonym_key, precheck=True, workers=2)
        assert structure._validator is None  # the reading pool's forks come later; models import on a thread
    con.close()


def test_landing_asks_for_it_once_and_only_when_something_is_new(tmp_path):
    generate(tmp_path / "inbox", facilities=2, patients=4, seed=3, fault_rate=0.0)
    con = connect(tmp_path / "w.duckdb")
    calls = []
    for _ in range(2):
        land_files(con, tmp_path / "inbox", start_batch(con, str(tmp_path / "inbox")), on_new_file=lambda: calls.append(1))
    fhir = tmp_path / "inbox" / "fhir"
    (fhir / "late.json").write_bytes(next(fhir.glob("*.json")).read_bytes())
    land_files(con, tmp_path / "inbox", start_batch(con, str(tmp_path / "inbox")), on_new_file=lambda: calls.append(2))
    con.close()
    assert calls == [1, 2]  # the first landing, not the re-run, and the copy (read, to learn it is a copy)


def test_a_block_checked_here_is_split_with_a_forked_helper(monkeypatch):
    """Without a pool or the run's process, a large enough block is checked half here, half in a helper forked
    with the models already imported: the same verdicts, in order."""
    texts, full = _texts()
    alone = structure.check_structure_fast(texts, full, workers=2)  # fewer than SPLIT_FROM: all here
    monkeypatch.setattr(structure, "SPLIT_FROM", 4)
    assert structure.check_structure_fast(texts, full, workers=2) == alone
    assert structure.check_structure_fast(texts, full, workers=1) == alone  # one core: nothing to split with
    monkeypatch.setattr(structure, "fhir_resources_error", lambda obj: f"pid {os.getpid()}")
    made_by = [error for error, _ in structure.check_structure_fast(texts, [True] * len(texts), workers=2)]
    here, there = made_by[:len(texts) // 2], made_by[len(texts) // 2:]
    assert set(here) == {f"pid {os.getpid()}"} and len(set(there)) == 1 and set(there) != set(here)


def test_a_helper_that_died_leaves_its_half_to_this_process(monkeypatch):
    texts, full = _texts()
    alone = structure.check_structure_fast(texts, full, workers=2)
    real_pool = structure.process_pool

    def killed_pool(workers):
        pool = real_pool(workers)
        pool.submit(int).result()  # started
        for process in list(pool._processes.values()):
            os.kill(process.pid, signal.SIGKILL)
            process.join()
        return pool

    monkeypatch.setattr(structure, "SPLIT_FROM", 4)
    monkeypatch.setattr(structure, "process_pool", killed_pool)
    assert structure.check_structure_fast(texts, full, workers=2) == alone


def test_a_daemonic_process_checks_alone(monkeypatch):
    """A partitioned run's map workers are daemonic and may not fork: they check the whole block themselves."""
    import multiprocessing

    texts, full = _texts()
    alone = structure.check_structure_fast(texts, full, workers=2)
    monkeypatch.setattr(structure, "SPLIT_FROM", 4)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    worker = context.Process(target=lambda: results.put(structure.check_structure_fast(texts, full, workers=2)),
                             daemon=True)
    worker.start()
    assert results.get(timeout=30) == alone
    worker.join()
