"""Issue 7: the partitioned ingest — (arrival day × sender) partitions parsed and staged in parallel, merged by
one writer — gives the warehouse a single-process `ingest` gives, on a process pool, on Dagster's multiprocess
executor and on dagster-dask (a local cluster started in the test)."""

import os
from pathlib import Path

import dagster as dg
import dask
import pytest

from pipelines.config import load_settings
from pipelines.generate import generate
from pipelines.partitioned.mapper import parse_shard, stage_shard
from pipelines.partitioned.merge import MissingShardError, merge_raw, merge_staging, plan_run
from pipelines.partitioned.plan import Partition, assign_shards, pending_partitions
from pipelines.partitioned.run import run_partitioned
from pipelines.warehouse import connect
from tests.conftest import run_ingest
from tests.ingest.test_idempotent import fingerprints

DAYS = 3
#: 2026-05-29 00:00 JST; file i arrives on day i % DAYS (the generator writes every file "now")
FIRST_ARRIVAL = 1_780_066_800


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A small inbox with faults (quarantine rows on every path) arriving over 3 days, and the fingerprints of
    its single-process ingest."""
    root = tmp_path_factory.mktemp("partitioned")
    inbox = root / "inbox"
    generate(inbox, facilities=5, patients=60, seed=11, fault_rate=0.08)
    for i, path in enumerate(sorted(p for p in inbox.rglob("*") if p.is_file() and not p.name.startswith("_"))):
        arrival = FIRST_ARRIVAL + (i % DAYS) * 86_400 + 3_600
        os.utime(path, (arrival, arrival))
    summary, con = run_ingest(inbox, root / "single.duckdb")
    con.close()
    assert summary["records_quarantined"] > 0  # the faults reach the comparison
    return inbox, fingerprints(root / "single.duckdb"), summary


def _settings(tmp_path, inbox):
    return load_settings(warehouse=tmp_path / "w.duckdb", inbox=inbox, reports=tmp_path / "reports")


def _steps_in_this_process(settings, lake, shards):
    """Plan, map and merge one after another in this process (what every executor calls); the run's summary."""
    with connect(settings.warehouse) as con:
        plan = plan_run(con, settings, lake, shards=shards)
    parsed = [parse_shard(settings, shard) for shard in plan.shards]
    with connect(settings.warehouse) as con:
        merge_raw(con, plan, parsed)
    staged = [stage_shard(settings, shard) for shard in plan.shards]
    with connect(settings.warehouse) as con:
        return merge_staging(con, settings, plan, staged)


def test_plan_cuts_days_by_senders_and_every_file_lands_in_one_partition(sample, tmp_path):
    inbox, _, single = sample
    settings = _settings(tmp_path, inbox)
    with connect(settings.warehouse) as con:
        plan = plan_run(con, settings, tmp_path / "lake", shards=2)
        partitions = pending_partitions(con, inbox)
        landed = [f for (f,) in con.execute("SELECT file_id FROM ops.file_manifest ORDER BY 1").fetchall()]
        on_disk, zips = con.execute("SELECT sum(size_bytes), count(*) FILTER (path LIKE '%.zip') "
                                    "FROM ops.file_manifest").fetchone()
    assert len({p.day for p in partitions}) == DAYS
    assert len({p.sender for p in partitions}) >= 3 + 3  # facilities' 医療機関番号 + consent/access/facilities feeds
    assert sorted(f for p in partitions for f in p.file_ids) == landed
    assert zips and sum(p.size_bytes for p in partitions) > on_disk  # a ZIP weighs the text it unpacks to
    assert len(landed) == single["files_ingested"]
    assert [len(s.partitions) for s in plan.shards] and len(plan.shards) == 2
    assert sorted(f for s in plan.shards for f in s.file_ids) == landed


def test_shards_balance_bytes_deterministically_and_refuse_zero():
    parts = [Partition("2026-05-29", s, (i,), size) for i, (s, size) in enumerate(
        [("a", 90), ("b", 50), ("c", 40), ("d", 10)])]
    first, second = assign_shards(1, "/lake", parts, 2)
    assert [p.sender for p in first.partitions] == ["a", "d"] and [p.sender for p in second.partitions] == ["b", "c"]
    assert assign_shards(1, "/lake", parts, 2) == [first, second]
    assert len(assign_shards(1, "/lake", [], 4)) == 1  # nothing new: one empty shard still closes the batch
    with pytest.raises(ValueError, match="at least 1"):
        assign_shards(1, "/lake", parts, 0)


def test_a_partition_larger_than_a_shards_share_is_sliced_by_consecutive_files():
    """One sender's day grows with the input; it is cut into slices of at most the even share (a single file
    larger than the share stays whole), which spread over the shards."""
    big = Partition("2026-05-29", "1311111111", (1, 2, 3, 4, 5, 6), 600, (100, 50, 100, 20, 30, 300))
    small = Partition("2026-05-29", "consent", (7,), 100, (100,))
    assert big.slices(175) == [Partition(big.day, big.sender, (1, 2), 150, (100, 50)),
                               Partition(big.day, big.sender, (3, 4, 5), 150, (100, 20, 30)),
                               Partition(big.day, big.sender, (6,), 300, (300,))]
    assert big.slices(600) == [big]
    unknown_sizes = Partition(big.day, big.sender, big.file_ids, big.size_bytes)
    assert unknown_sizes.slices(175) == [unknown_sizes]

    shards = assign_shards(1, "/lake", [big, small], 4)  # even share: 700 bytes / 4 shards → 175
    assert sorted(sum(p.size_bytes for p in s.partitions) for s in shards) == [100, 150, 150, 300]
    assert sorted(f for s in shards for f in s.file_ids) == [1, 2, 3, 4, 5, 6, 7]
    assert {p.key for s in shards for p in s.partitions} == {big.key, small.key}  # the lake layout keeps its keys
    assert assign_shards(1, "/lake", [big, small], 4) == shards
    whole = assign_shards(1, "/lake", [big, small], 1)
    assert whole[0].partitions == (big, small)  # one shard: nothing to spread, nothing sliced


def _row_counts(warehouse: Path, schemas=("staging", "core")) -> dict[str, int]:
    with connect(warehouse, read_only=True) as con:
        tables = con.execute("SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE schema_name IN ? "
                             "ORDER BY 1", [list(schemas)]).fetchall()
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for (t,) in tables}


def test_steps_split_into_map_and_reduce_whatever_the_serial_order_interleaves(monkeypatch):
    """The serial order starts core.patient and the checkup upsert among the staging steps; the split still puts
    every staging step in the map and every core step in the reduce, each in serial order, and refuses a
    staging step that would wait for a core step."""
    from pipelines.ingest import run as ingest_run
    from pipelines.partitioned import steps as partitioned_steps

    settings = load_settings()
    serial = [name for name, _ in ingest_run.processing_steps(settings)]
    assert serial.index("core.checkup_result") < serial.index("staging.condition")  # interleaved
    parse, staging, core = partitioned_steps.split_steps(settings)
    assert parse[0] == "raw.resource"
    assert [n for n, _ in staging] == [n for n in serial[1:] if not n.startswith("core.")]
    assert [n for n, _ in core] == [n for n in serial if n.startswith("core.")]
    dependencies = ingest_run.step_dependencies()
    monkeypatch.setattr(partitioned_steps, "step_dependencies",
                        lambda: {**dependencies, "staging.condition": ("core.patient",)})
    with pytest.raises(RuntimeError, match="staging step staging.condition waits for core.patient"):
        partitioned_steps.split_steps(settings)


def test_process_pool_run_equals_single_process_shares_through_ducklake_and_rerun_does_nothing(sample, tmp_path):
    inbox, single, single_summary = sample
    settings = _settings(tmp_path, inbox)
    catalog = tmp_path / "share" / "karte.ducklake"
    maps = []
    # one map step per process: every step in a fresh process (what bounds their memory), none left waiting
    summary = run_partitioned(settings, lake=tmp_path / "lake", shards=3, workers=2, ducklake=catalog,
                              map_results=maps, steps_per_process=1)
    assert fingerprints(settings.warehouse) == single
    assert len(maps) == 6 and len({m.process_id for m in maps}) == 6 and os.getpid() not in {m.process_id for m in maps}
    assert all(m.peak_rss_kib > 50 * 1024 for m in maps)  # each map process's own peak, DuckDB and imports in it
    for count in ("records_in", "records_loaded", "records_quarantined", "records_duplicate", "files_ingested"):
        assert getattr(summary, count) == single_summary[count], count
    assert any((tmp_path / "lake").glob("batch=1/staging/staging.condition/day=*/sender=*/*.parquet"))
    expected = {t: n for t, n in _row_counts(settings.warehouse).items() if n}  # empty tables have no files
    assert _lake_counts(catalog).items() >= expected.items()

    again = run_partitioned(settings, lake=tmp_path / "lake", shards=3, workers=2, ducklake=catalog)
    assert again.records_in == 0 and again.files_skipped_duplicate == single_summary["files_ingested"] + \
        single_summary["files_skipped_duplicate"]
    assert fingerprints(settings.warehouse) == single
    assert _lake_counts(catalog).items() >= expected.items()  # a re-publish adds no staging rows twice


def _lake_counts(catalog: Path) -> dict[str, int]:
    import duckdb

    from pipelines.partitioned.ducklake import attach_catalog

    con = duckdb.connect()
    try:
        attach_catalog(con, catalog, catalog.parent / f"{catalog.stem}.data")
        tables = con.execute("SELECT schema_name || '.' || table_name FROM duckdb_tables() "
                             "WHERE database_name = 'lake'").fetchall()
        return {t: con.execute(f"SELECT count(*) FROM lake.{t}").fetchone()[0] for (t,) in tables}
    finally:
        con.close()


def test_steps_in_one_process_equal_single_process_and_a_repeated_merge_loads_nothing(sample, tmp_path):
    """The pure steps in order, no pool (what each executor calls); then both merges again, as a re-executed
    Dagster step would run them: nothing is loaded twice."""
    inbox, single, _ = sample
    settings = _settings(tmp_path, inbox)
    with connect(settings.warehouse) as con:
        plan = plan_run(con, settings, tmp_path / "lake", shards=2)
    parsed = [parse_shard(settings, shard) for shard in plan.shards]
    with connect(settings.warehouse) as con:
        # a shard whose map result went missing (more planned shards than map ops) stops the merge whole:
        # marking its files parsed without their rows would lose them for good
        with pytest.raises(MissingShardError, match=r"shards \[1\]"):
            merge_raw(con, plan, parsed[:1])
        assert not con.execute("SELECT bool_or(parsed) FROM ops.file_manifest").fetchone()[0]
        assert merge_raw(con, plan, parsed) > 0
    staged = [stage_shard(settings, shard) for shard in plan.shards]
    with connect(settings.warehouse) as con:
        merge_staging(con, settings, plan, staged)
    assert fingerprints(settings.warehouse) == single

    with connect(settings.warehouse) as con:
        assert merge_raw(con, plan, parsed) == 0
        merge_staging(con, settings, plan, staged)
    assert fingerprints(settings.warehouse) == single


def test_raw_merged_a_file_at_a_time_equals_single_process(sample, tmp_path, monkeypatch):
    """The raw merge goes in runs of files (its memory follows MERGE_CHUNK_BYTES, not the input); ids, bundle
    keys and quarantine rows continue across runs exactly as one statement over everything gives them."""
    from pipelines.partitioned import merge

    inbox, single, _ = sample
    runs = []
    real = merge._merge_raw_run

    def recording(con, sources, run):
        runs.append(run)
        return real(con, sources, run)

    monkeypatch.setattr(merge, "MERGE_CHUNK_BYTES", 1)  # every file is a run of its own
    monkeypatch.setattr(merge, "_merge_raw_run", recording)
    _steps_in_this_process(_settings(tmp_path, inbox), tmp_path / "lake", shards=3)
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        files = [f for (f,) in con.execute("SELECT file_id FROM ops.file_manifest ORDER BY 1").fetchall()]
    assert runs == [(f, f) for f in files] and len(runs) > 20
    assert fingerprints(tmp_path / "w.duckdb") == single


def test_partitions_sliced_across_shards_give_the_single_process_warehouse(sample, tmp_path):
    """With more shards than the senders' days fill evenly, one (day, sender) partition's files go to several
    map processes; ids, bundle keys, the structure check's first files and sample, and every quarantine row
    come out as a single-process run gives them."""
    inbox, single, _ = sample
    settings = _settings(tmp_path, inbox)
    with connect(settings.warehouse) as con:
        plan = plan_run(con, settings, tmp_path / "lake", shards=8)
    shards_of = {}
    for shard in plan.shards:
        for part in shard.partitions:
            shards_of.setdefault(part.key, set()).add(shard.index)
    assert max(len(s) for s in shards_of.values()) > 1  # some partition really is sliced
    parsed = [parse_shard(settings, shard) for shard in plan.shards]
    with connect(settings.warehouse) as con:
        merge_raw(con, plan, parsed)
    staged = [stage_shard(settings, shard) for shard in plan.shards]
    with connect(settings.warehouse) as con:
        merge_staging(con, settings, plan, staged)
    assert fingerprints(settings.warehouse) == single


def test_a_merge_re_executed_after_a_failed_publish_publishes_each_file_once(sample, tmp_path, monkeypatch):
    """The merge commits the warehouse, then publishes: a publish that fails leaves the warehouse merged, and
    the re-executed merge (which loads nothing) must still publish — and publishing again adds nothing."""
    from pipelines.partitioned import ducklake

    inbox, single, _ = sample
    settings = _settings(tmp_path, inbox)
    catalog = tmp_path / "share" / "karte.ducklake"
    with connect(settings.warehouse) as con:
        plan = plan_run(con, settings, tmp_path / "lake", shards=2, ducklake=catalog)
    parsed = [parse_shard(settings, shard) for shard in plan.shards]
    with connect(settings.warehouse) as con:
        merge_raw(con, plan, parsed)
    staged = [stage_shard(settings, shard) for shard in plan.shards]
    real_publish = ducklake.publish

    def failing_publish(*args, **kwargs):
        raise OSError("disk full while publishing")

    monkeypatch.setattr(ducklake, "publish", failing_publish)
    with connect(settings.warehouse) as con, pytest.raises(OSError, match="disk full"):
        merge_staging(con, settings, plan, staged)
    assert fingerprints(settings.warehouse) == single
    monkeypatch.setattr(ducklake, "publish", real_publish)
    expected = {t: n for t, n in _row_counts(settings.warehouse).items() if n}
    for _ in range(2):
        with connect(settings.warehouse) as con:
            merge_staging(con, settings, plan, staged)
        assert {t: n for t, n in _lake_counts(catalog).items() if n} == expected  # every row once, none missing


def test_structure_sample_and_first_files_are_the_single_process_ones(sample, tmp_path, monkeypatch):
    """fhir.resources (patched) rejects every Condition the fast check passes, so which resources it sees —
    each source's first file and the 1-in-50 sample by raw id — decides what is quarantined. A later day's
    partition does not hold its sender's first file, and its raw ids are only final after the raw merge."""
    from pipelines.ingest import structure

    real = structure.fhir_resources_error
    monkeypatch.setattr(structure, "fhir_resources_error", lambda obj: (
        "planted: Condition" if isinstance(obj, dict) and obj.get("resourceType") == "Condition" else real(obj)))
    monkeypatch.setattr(structure, "POOL_THRESHOLD", 10**9)  # in this process, where the patch is
    inbox, _, _ = sample
    run_ingest(inbox, tmp_path / "single.duckdb")[1].close()
    settings = _settings(tmp_path, inbox)
    _steps_in_this_process(settings, tmp_path / "lake", shards=3)
    with connect(settings.warehouse) as con:
        planted = con.execute("SELECT count(*) FROM staging.structure_failure "
                              "WHERE structure_error LIKE 'planted%'").fetchone()[0]
    assert planted > 0
    assert fingerprints(settings.warehouse) == fingerprints(tmp_path / "single.duckdb")


def _multiprocess_job():
    from pipelines.definitions import defs

    return defs.get_job_def("partitioned_ingest_job")


def _dask_job():
    from pipelines.definitions import defs

    return defs.get_job_def("partitioned_ingest_dask_job")


def _run_config(tmp_path: Path, inbox: Path, plan_op: str = "plan_partitions", **execution) -> dict:
    config = {"resources": {"karte": {"config": {"warehouse": str(tmp_path / "w.duckdb"), "inbox": str(inbox),
                                                 "reports": str(tmp_path / "reports")}}},
              "ops": {plan_op: {"config": {"lake": str(tmp_path / "lake"), "shards": 2}}}}
    if execution:
        config["execution"] = {"config": execution}
    return config


def _execute(job_fn, run_config: dict, tmp_path: Path, summary: bool = True) -> dict | None:
    (tmp_path / "dagster").mkdir()
    with (dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance,
          dg.execute_job(dg.reconstructable(job_fn), instance=instance, run_config=run_config) as result):
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        # (the dask executor's run result does not carry op outputs back; the warehouse is what is compared)
        return result.output_for_node("merge_staging_partitions") if summary else None


def test_dagster_multiprocess_run_equals_single_process(sample, tmp_path):
    inbox, single, single_summary = sample
    summary = _execute(_multiprocess_job, _run_config(tmp_path, inbox), tmp_path)
    assert summary["records_in"] == single_summary["records_in"]
    assert fingerprints(tmp_path / "w.duckdb") == single


def test_dagster_dask_run_equals_single_process(sample, tmp_path):
    inbox, single, _ = sample
    cluster = {"cluster": {"local": {"n_workers": 2, "threads_per_worker": 1, "processes": True,
                                     "dashboard_address": None}}}
    # worker processes, not threads: the structure step forks a process pool, which a threaded worker must not
    # do, and which a daemonic worker process may not
    with dask.config.set({"distributed.worker.daemon": False}):
        _execute(_dask_job, _run_config(tmp_path, inbox, "plan_fixed_shards", **cluster), tmp_path, summary=False)
    assert fingerprints(tmp_path / "w.duckdb") == single


def test_an_archive_takes_the_files_the_partitioned_run_finished(sample, tmp_path):
    """KARTE_ARCHIVE applies to the partitioned run as to `ingest`: after the merge, every finished file has left
    the inbox, and the warehouse is the single-process one."""
    import shutil

    from pipelines.ingest.landing import scan_inbox

    inbox = shutil.copytree(sample[0], tmp_path / "inbox")
    files = {f.relpath for f in scan_inbox(inbox)}
    settings = load_settings(warehouse=tmp_path / "w.duckdb", inbox=inbox, archive=tmp_path / "archive")
    summary = _steps_in_this_process(settings, tmp_path / "lake", shards=2)
    assert summary.files_archived == len(files) and scan_inbox(inbox) == []
    assert {f.relpath for f in scan_inbox(tmp_path / "archive")} == files
    assert fingerprints(settings.warehouse) == sample[1]


def test_a_raw_merge_killed_between_runs_is_finished_by_its_retry_as_one_process_would(sample, tmp_path,
                                                                                       monkeypatch):
    """Each run of files commits with its files' parsed flags: a merge that fails on its third run keeps the first
    two, and the re-executed step loads the rest with the ids, bundle keys and quarantine rows a single-process
    run gives them."""
    from pipelines.partitioned import merge

    inbox, single, _ = sample
    settings = _settings(tmp_path, inbox)
    with connect(settings.warehouse) as con:
        plan = plan_run(con, settings, tmp_path / "lake", shards=2)
    parsed = [parse_shard(settings, shard) for shard in plan.shards]
    real, calls = merge._merge_raw_run, []

    def dies_on_the_third_run(con, sources, run):
        calls.append(run)
        if len(calls) == 3:
            raise OSError("No space left on device")
        return real(con, sources, run)

    monkeypatch.setattr(merge, "MERGE_CHUNK_BYTES", 1)  # every file is a run of its own
    monkeypatch.setattr(merge, "_merge_raw_run", dies_on_the_third_run)
    with connect(settings.warehouse) as con:
        with pytest.raises(OSError, match="No space left"):
            merge_raw(con, plan, parsed)
        first_two = [f for f, _ in calls[:2]]
        assert [f for (f,) in con.execute("SELECT file_id FROM ops.file_manifest WHERE parsed ORDER BY 1")
                .fetchall()] == first_two
        assert con.execute("SELECT count(DISTINCT file_id) FROM raw.resource").fetchone()[0] == 2
    monkeypatch.setattr(merge, "_merge_raw_run", real)
    with connect(settings.warehouse) as con:
        assert merge_raw(con, plan, parsed) > 0
        assert con.execute("SELECT bool_and(parsed) FROM ops.file_manifest").fetchone()[0]
    staged = [stage_shard(settings, shard) for shard in plan.shards]
    with connect(settings.warehouse) as con:
        merge_staging(con, settings, plan, staged)
    assert fingerprints(settings.warehouse) == single


def _small_windows_recording_loads(monkeypatch) -> list[tuple[str, str]]:
    """Small windows (KARTE_WINDOW_IDS) and a record of each load the staging merge makes: (table, its filter)."""
    from pipelines.partitioned import merge

    monkeypatch.setenv("KARTE_WINDOW_IDS", "150")
    loads, real = [], merge.load_table

    def recording(con, table, files, order_by, where="true"):
        loads.append((table, where))
        return real(con, table, files, order_by, where)

    monkeypatch.setattr(merge, "load_table", recording)
    return loads


def test_staging_merged_window_by_window_equals_single_process(sample, tmp_path, monkeypatch):
    """The staging merge commits a window of raw ids at a time (its memory follows the window, not the batch):
    every row lands once, the bundle-keyed and the unkeyed rows included, as one process stages them."""
    inbox, single, _ = sample
    loads = _small_windows_recording_loads(monkeypatch)
    _steps_in_this_process(_settings(tmp_path, inbox), tmp_path / "lake", shards=2)
    windows = {where for table, where in loads if table == "staging.condition"}
    assert len(windows) > 5
    assert fingerprints(tmp_path / "w.duckdb") == single


@pytest.mark.parametrize("finisher", ["the re-executed merge", "a single-process ingest"])
def test_a_staging_merge_killed_between_windows_leaves_staging_level_with_its_watermarks(sample, tmp_path,
                                                                                        monkeypatch, finisher):
    """A merge that fails in its third window keeps two: every staging table holds rows up to the watermarks and
    none beyond, so either the re-executed merge or a plain single-process ingest finishes it into the warehouse
    one process gives."""
    from pipelines.ingest.bundles import CONSUMER as BUNDLE_CONSUMER
    from pipelines.ingest.run import ingest
    from pipelines.ingest.structure import CONSUMER as STRUCTURE_CONSUMER
    from pipelines.partitioned import merge
    from pipelines.warehouse import get_watermark

    inbox, single, _ = sample
    settings = _settings(tmp_path, inbox)
    loads = _small_windows_recording_loads(monkeypatch)
    with connect(settings.warehouse) as con:
        plan = plan_run(con, settings, tmp_path / "lake", shards=2)
    parsed = [parse_shard(settings, shard) for shard in plan.shards]
    with connect(settings.warehouse) as con:
        merge_raw(con, plan, parsed)
    staged = [stage_shard(settings, shard) for shard in plan.shards]
    recording = merge.load_table

    def dies_in_the_third_window(con, table, files, order_by, where="true"):
        if len({w for t, w in loads if t == "staging.condition"}) == 2 and table == "staging.condition":
            raise OSError("No space left on device")
        return recording(con, table, files, order_by, where)

    monkeypatch.setattr(merge, "load_table", dies_in_the_third_window)
    with connect(settings.warehouse) as con:
        with pytest.raises(OSError, match="No space left"):
            merge_staging(con, settings, plan, staged)
        raw_mark, bundle_mark = (get_watermark(con, c) for c in (STRUCTURE_CONSUMER, BUNDLE_CONSUMER))
        top = con.execute("SELECT max(raw_id) FROM raw.resource").fetchone()[0]
        assert 0 < raw_mark < top and bundle_mark > 0
        beyond = {table: con.execute(f"SELECT count(*) FROM staging.{table} WHERE raw_id > ?", [raw_mark]).fetchone()[0]
                  for table in ("condition", "observation", "patient", "fast_structure_check")}
        beyond["bundle"] = con.execute("SELECT count(*) FROM staging.bundle WHERE bundle_key > ?",
                                       [bundle_mark]).fetchone()[0]
        assert beyond == dict.fromkeys(beyond, 0)
        assert con.execute("SELECT count(*) FROM staging.condition").fetchone()[0] > 0
    monkeypatch.setattr(merge, "load_table", recording)
    with connect(settings.warehouse) as con:
        if finisher == "the re-executed merge":
            merge_staging(con, settings, plan, staged)
        else:
            ingest(con, settings)
    assert fingerprints(settings.warehouse) == single


@pytest.mark.parametrize(("span", "window", "expected"), [
    ({"raw_id": (1, 100, False)}, (100, 200), False),  # (lo, hi]: raw id 100 belongs to the window before
    ({"raw_id": (1, 101, False)}, (100, 200), True),
    ({"raw_id": (201, 300, False)}, (100, 200), False),
    ({"raw_id": (1, 50, True), "bundle_key": (3, 4, False)}, (100, 200), True),  # rows without a raw id go by bundle
    ({"raw_id": (1, 50, True), "bundle_key": (9, 12, False)}, (100, 200), False),
    ({"raw_id": (1, 50, False), "bundle_key": (3, 4, False)}, (100, 200), False),  # every row has a raw id
    ({"bundle_key": (4, 6, False)}, (100, 200), True),  # staging.bundle: bundle keys only
    ({"raw_id": None}, (100, 200), True),  # no bounds in the footer: read it
    ({}, (100, 200), False),  # an empty file
])
def test_a_window_reads_only_the_files_that_may_hold_its_rows(span, window, expected):
    """Bundle keys of the window: (2, 5]."""
    from pipelines.partitioned.merge import _may_hold

    assert _may_hold(span, window, (2, 5)) is expected
