"""The garbage collector during a batch run: the objects from before it frozen inside, nothing frozen outside."""

import gc
import weakref

import duckdb
import pytest

from pipelines.ingest import collector
from pipelines.ingest.collector import batch_collection
from pipelines.warehouse import cap_duckdb
from tests.conftest import run_ingest, write_bundles


@pytest.fixture(autouse=True)
def nothing_frozen():
    """Each test starts with nothing frozen and leaves it so."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_inside_a_run_the_objects_from_before_it_are_frozen():
    existing = [[i] for i in range(100)]  # tracked containers made before the run
    with batch_collection():
        assert gc.get_freeze_count() >= len(existing)
    assert gc.get_freeze_count() == 0


def test_nothing_stays_frozen_when_the_run_fails():
    with pytest.raises(RuntimeError), batch_collection():
        raise RuntimeError("a step failed")
    assert gc.get_freeze_count() == 0


def test_a_nested_run_leaves_the_outer_one_in_charge():
    with batch_collection():
        frozen = gc.get_freeze_count()
        with batch_collection():
            pass
        assert gc.get_freeze_count() == frozen  # the inner exit did not unfreeze the outer run's objects
    assert gc.get_freeze_count() == 0


def test_cycles_made_during_a_run_are_collected_on_their_own():
    """The collector keeps running for new objects (a run that switched it off would keep every cycle it made):
    cycles dropped during a run are gone without an explicit gc.collect()."""
    class Node:
        pass

    with batch_collection():
        alive = []
        for _ in range(5_000):
            a, b = Node(), Node()
            a.other, b.other = b, a
            alive.append(weakref.ref(a))
            del a, b
        assert sum(ref() is not None for ref in alive) < len(alive) // 2


def test_an_ingest_runs_under_it_and_restores_the_process(inbox, warehouse, monkeypatch):
    seen = []
    real = collector.batch_collection

    def spy(*args, **kwargs):
        seen.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr("pipelines.ingest.run.batch_collection", spy)
    write_bundles(inbox, {})
    _, con = run_ingest(inbox, warehouse)
    con.close()
    assert seen
    assert gc.get_freeze_count() == 0


def test_a_dagster_ingest_step_runs_under_it_on_a_capped_connection_closed_after(tmp_path):
    from pipelines.resources import KarteWarehouse

    karte = KarteWarehouse(warehouse=str(tmp_path / "w.duckdb"), inbox=str(tmp_path / "inbox"),
                           reports=str(tmp_path / "reports"))
    with karte.ingest_connection() as con:
        assert gc.get_freeze_count() > 0
        capped = cap_duckdb(duckdb.connect(), karte.settings().ingest_memory_limit)
        assert con.execute("SELECT current_setting('memory_limit')").fetchone() == \
            capped.execute("SELECT current_setting('memory_limit')").fetchone()
        assert con.execute("SELECT count(*) FROM ops.watermark").fetchone() == (0,)  # the warehouse, laid out
    assert gc.get_freeze_count() == 0
    with pytest.raises(Exception, match="closed"):
        con.execute("SELECT 1")
