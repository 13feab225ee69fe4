"""Two ingest steps at a time: the schedule keeps every dependency, overlaps what is independent, stops cleanly
on a failure, and gives the warehouse a one-lane run gives."""

import threading
import time

import duckdb
import pytest

from pipelines.config import load_settings
from pipelines.ingest.run import processing_steps, step_dependencies
from pipelines.ingest.schedule import ScheduleError, check_order, run_steps
from tests.conftest import run_ingest
from tests.ingest.test_idempotent import fingerprints

WAIT = 10  # seconds a step waits for the other lane before the test fails instead of hanging


def test_the_serial_order_respects_every_dependency():
    steps = processing_steps(load_settings())
    names = {name for name, _ in steps}
    after = step_dependencies()
    check_order(steps, after)
    assert set(after) == names - {"raw.resource"}
    # the hidden couplings named in step_dependencies' docstring
    assert {"staging.checkup_result", "staging.observation", "staging.condition"} <= set(after["core.document"])
    assert "core.patient" in after["core.checkup_result"]


def test_an_order_that_breaks_a_dependency_is_refused():
    steps = [("b", lambda con: None), ("a", lambda con: None)]
    with pytest.raises(ScheduleError, match="step b depends on a"):
        run_steps(duckdb.connect(), steps, {"b": ("a",)})


def test_independent_steps_overlap_and_dependent_ones_wait(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    both_running = threading.Barrier(2, timeout=WAIT)
    log: list[str] = []

    def meets_the_other_lane(name):
        def step(own):
            log.append(f"start {name}")
            both_running.wait()  # raises BrokenBarrierError unless the other lane runs at the same time
            own.execute(f"CREATE TABLE {name} AS SELECT 1 AS x")
            log.append(f"end {name}")
        return step

    def reads_both(own):
        log.append("start c")
        assert own.execute("SELECT (SELECT x FROM a) + (SELECT x FROM b)").fetchone() == (2,)

    steps = [("first", lambda c: log.append("first")), ("a", meets_the_other_lane("a")),
             ("b", meets_the_other_lane("b")), ("c", reads_both)]
    after = {"a": ("first",), "b": ("first",), "c": ("a", "b")}
    run_steps(con, steps, after, lanes=2)
    assert log[0] == "first" and log[-1] == "start c"
    assert set(log[1:3]) == {"start a", "start b"}  # both began before either ended


def test_a_failing_step_lets_the_other_lane_finish_and_starts_nothing_new(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    other_started, failing = threading.Event(), threading.Event()
    ran: list[str] = []

    def fails(own):
        other_started.wait(WAIT)
        failing.set()
        raise RuntimeError("disk full")

    def slow(own):
        other_started.set()
        failing.wait(WAIT)
        time.sleep(0.3)  # still running when the scheduler learns of the failure
        own.execute("CREATE TABLE finished AS SELECT 1 AS x")
        ran.append("slow")

    # "later" depends on nothing: only the failure keeps it from taking the lane "fails" freed
    steps = [("fails", fails), ("slow", slow), ("later", lambda own: ran.append("later"))]
    with pytest.raises(RuntimeError, match="disk full"):
        run_steps(con, steps, {}, lanes=2)
    assert ran == ["slow"]
    assert con.execute("SELECT x FROM finished").fetchone() == (1,)


def test_a_step_on_another_lane_has_the_warehouse_session(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("SET TimeZone = 'Asia/Tokyo'")  # what a JST machine's default would be
    zones = []

    def zone(own):
        zones.append(own.execute("SELECT current_setting('TimeZone')").fetchone()[0])

    run_steps(con, [("x", zone), ("y", zone)], {}, lanes=2)
    assert zones == ["UTC", "UTC"]


@pytest.fixture(scope="module")
def faulty_inbox(tmp_path_factory):
    """A generated inbox with faults (quarantine rows and outcomes are written from both lanes) and the
    warehouse two lanes make of it."""
    from pipelines.generate import generate

    base = tmp_path_factory.mktemp("lanes")
    generate(base / "inbox", facilities=8, patients=120, seed=11, fault_rate=0.05)
    summary, con = run_ingest(base / "inbox", base / "two.duckdb")  # the default: two lanes
    con.close()
    assert summary["records_quarantined"] > 0 and summary["records_loaded"] > 0
    return base / "inbox", fingerprints(base / "two.duckdb")


def test_two_lanes_give_the_warehouse_one_lane_gives(faulty_inbox, tmp_path, monkeypatch):
    inbox, two_lanes = faulty_inbox
    monkeypatch.setenv("KARTE_INGEST_LANES", "1")
    run_ingest(inbox, tmp_path / "one.duckdb")[1].close()
    assert fingerprints(tmp_path / "one.duckdb") == two_lanes


@pytest.mark.parametrize("value", ["0", "two", "-1", ""])
def test_a_lane_count_that_is_not_a_positive_number_is_a_clear_error(monkeypatch, value):
    from pipelines.config import ConfigError

    monkeypatch.setenv("KARTE_INGEST_LANES", value)
    with pytest.raises(ConfigError, match="KARTE_INGEST_LANES must be a whole number of at least 1"):
        load_settings()


@pytest.mark.parametrize(("cores", "lanes", "threads"), [(2, "2", 1), (16, "2", 8), (2, "1", 2), (1, "2", 1)])
def test_duckdb_threads_default_to_the_cores_shared_among_the_lanes(monkeypatch, cores, lanes, threads):
    monkeypatch.setattr("pipelines.config.usable_cores", lambda: cores)
    monkeypatch.setenv("KARTE_INGEST_LANES", lanes)
    monkeypatch.delenv("KARTE_INGEST_THREADS", raising=False)
    assert load_settings().ingest_threads == threads


def test_an_ingest_runs_its_duckdb_queries_on_the_configured_threads(faulty_inbox, tmp_path, monkeypatch):
    from pipelines.ingest import run

    inbox, _ = faulty_inbox
    monkeypatch.setenv("KARTE_INGEST_THREADS", "3")
    seen = []
    real = run.run_steps
    monkeypatch.setattr(run, "run_steps", lambda con, *a, **k: seen.append(
        con.execute("SELECT current_setting('threads')").fetchone()[0]) or real(con, *a, **k))
    run_ingest(inbox, tmp_path / "threads.duckdb")[1].close()
    assert seen == [3]


@pytest.mark.parametrize("value", ["0", "many"])
def test_a_thread_count_that_is_not_a_positive_number_is_a_clear_error(monkeypatch, value):
    from pipelines.config import ConfigError

    monkeypatch.setenv("KARTE_INGEST_THREADS", value)
    with pytest.raises(ConfigError, match="KARTE_INGEST_THREADS must be a whole number of at least 1"):
        load_settings()


def test_the_dagster_assets_give_the_warehouse_karte_ingest_gives(faulty_inbox, tmp_path):
    """The asset graph runs the steps in its own topological order: its dependencies come from the same
    step_dependencies, so the order cannot change what is written."""
    import dagster as dg

    from pipelines.definitions import all_assets
    from pipelines.resources import KarteWarehouse

    inbox, karte_ingest = faulty_inbox
    karte = KarteWarehouse(warehouse=str(tmp_path / "dagster.duckdb"), inbox=str(inbox),
                           reports=str(tmp_path / "reports"))
    result = dg.materialize(all_assets, resources={"karte": karte},
                            selection=dg.AssetSelection.groups("landing", "raw", "staging", "core"),
                            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    assert result.success
    assert fingerprints(tmp_path / "dagster.duckdb") == karte_ingest
    # the keyless tables' grain checks ran beside their assets (pipelines/warehouse/grain.py)
    passed = {(e.asset_key.path[-1], e.check_name) for e in result.get_asset_check_evaluations() if e.passed}
    assert {("file_manifest", "one_row_per_file_id"), ("file_manifest", "one_row_per_content"),
            ("bundle", "one_row_per_bundle"), ("fhir_structure", "one_fast_verdict_per_resource"),
            ("fhir_structure", "one_failure_per_resource")} <= passed


def test_one_lane_runs_every_step_in_order_on_the_calling_thread(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TEMP TABLE callers_own AS SELECT 1 AS x")
    seen = []

    def step(own, name):
        own.execute(f"CREATE TABLE {name} AS SELECT 1 AS x")  # the same database as the caller's
        own.execute(f"CREATE TEMP TABLE {name}_scratch AS SELECT 1 AS x")
        seen.append((name, threading.current_thread().name, own is con))

    steps = [(name, lambda own, name=name: step(own, name)) for name in ("a", "b", "c", "d")]
    run_steps(con, steps, {"c": ("a",), "d": ("a",)}, lanes=1)
    assert seen == [(name, threading.main_thread().name, False) for name in ("a", "b", "c", "d")]
    assert con.execute("SELECT count(*) FROM a, b, c, d").fetchone() == (1,)
    # a step's temp tables went with its connection; the caller's stayed
    assert con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall() == [("callers_own",)]


def test_a_step_that_runs_out_of_memory_beside_another_is_run_again_alone(tmp_path, caplog):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    both_running = threading.Barrier(2, timeout=WAIT)
    attempts, threads = [], {}

    def crowded(own):
        attempts.append(threading.current_thread().name)
        if len(attempts) == 1:
            both_running.wait()
            own.execute("BEGIN")
            own.execute("CREATE TABLE half_done AS SELECT 1 AS x")
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block of size 256.0 KiB")
        own.execute("CREATE TABLE crowded AS SELECT 1 AS x")

    def beside(own):
        both_running.wait()
        own.execute("CREATE TABLE beside AS SELECT 1 AS x")

    def later(name):
        return lambda own: threads.setdefault(name, threading.current_thread().name)

    steps = [("first", lambda own: None), ("crowded", crowded), ("beside", beside), ("x", later("x")),
             ("y", later("y"))]
    with caplog.at_level("WARNING"):
        run_steps(con, steps, {"crowded": ("first",), "beside": ("first",), "x": ("crowded",), "y": ("crowded",)},
                  lanes=2)
    assert len(attempts) == 2 and attempts[1] == threading.main_thread().name  # again, alone
    assert con.execute("SELECT (SELECT x FROM crowded) + (SELECT x FROM beside)").fetchone() == (2,)
    assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'half_done'").fetchone()[0]
    assert threads == {"x": threading.main_thread().name, "y": threading.main_thread().name}  # one lane from then on
    assert "crowded ran out of DuckDB memory beside another step" in caplog.text


@pytest.mark.parametrize("lanes", [1, 2])
def test_running_out_of_memory_alone_is_still_an_error(tmp_path, lanes):
    attempts = []

    def out_of_memory(own):
        attempts.append(1)
        raise duckdb.OutOfMemoryException("Out of Memory Error")

    # with two lanes, x and y run side by side on pool threads, then "c" runs on one alone: nothing to blame
    threads = []
    steps = [("x", lambda own: None), ("y", lambda own: None),
             ("c", lambda own: threads.append(threading.current_thread().name) or out_of_memory(own))]
    with pytest.raises(duckdb.OutOfMemoryException):
        run_steps(duckdb.connect(str(tmp_path / "w.duckdb")), steps, {"c": ("x", "y")}, lanes=lanes)
    assert attempts == [1]
    assert (threads[0] == threading.main_thread().name) == (lanes == 1)
