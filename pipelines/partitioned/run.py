"""The partitioned ingest without Dagster: map steps over a process pool, reduce steps in this process.
Same result as `pipelines.ingest.run.ingest` (tests/scale/test_partitioned.py); what `karte bench` times."""

from contextlib import closing
from functools import partial
from multiprocessing import get_context
from pathlib import Path

from pipelines.config import Settings
from pipelines.ingest.run import IngestSummary
from pipelines.partitioned.mapper import MapResult, parse_shard, stage_shard
from pipelines.partitioned.merge import default_lake, merge_raw, merge_staging, plan_run
from pipelines.warehouse import cap_memory, connect

#: map steps a pool process runs before a fresh one replaces it. A process that ran shard after shard kept
#: growing: at 16 × the sample on 64 shards its peak rose 421 → 666 MiB over the raw phase and to 818 MiB over
#: the staging phase, so the map processes' memory followed the input, not the shard. Neither emptying the seal
#: caches, malloc_trim nor DuckDB's allocator flush settings stopped it; a fresh process does. Dagster's
#: executors start a process per step anyway. A fresh process costs ≈ 1.5 s (imports, compiled checks), so
#: four steps each: at 4 × the sample on 16 shards the largest map process went 599 → 552 MiB (1.07 × the
#: sample's, against 1.13 ×) for a run of 56.7 s against 44.8–49.6 s (docs/capacity.md).
MAP_STEPS_PER_PROCESS = 4


def run_partitioned(settings: Settings, lake: Path | None = None, shards: int = 4,
                    workers: int = 2, ducklake: Path | None = None,
                    map_results: list[MapResult] | None = None,
                    steps_per_process: int = MAP_STEPS_PER_PROCESS) -> IngestSummary:
    """`ducklake`: also publish the run to this DuckLake catalog file (pipelines/partitioned/ducklake.py).
    `map_results`: a list that receives every map step's result (shard, rows, the map process's peak memory).
    `steps_per_process`: map steps a pool process runs before it is replaced (memory; see MAP_STEPS_PER_PROCESS)."""
    lake = Path(lake or default_lake(settings))

    def warehouse():  # every connection of the run under the ingest cap, as the Dagster ops' (connect_for_ingest)
        return closing(cap_memory(connect(settings.warehouse), settings.ingest_memory_limit))

    with warehouse() as con:
        plan = plan_run(con, settings, lake, shards, ducklake)
    # spawn, not fork: the parent has had DuckDB's threads running
    # multiprocessing's Pool, not ProcessPoolExecutor: the executor's max_tasks_per_child deadlocks once a
    # process retires with tasks still queued (CPython gh-115634, 3.11 to 3.15 betas)
    with get_context("spawn").Pool(workers, maxtasksperchild=steps_per_process) as pool:
        parsed = pool.map(partial(parse_shard, settings), plan.shards, chunksize=1)
        with warehouse() as con:
            merge_raw(con, plan, parsed)
        staged = pool.map(partial(stage_shard, settings), plan.shards, chunksize=1)
    if map_results is not None:
        map_results.extend(parsed + staged)
    with warehouse() as con:
        return merge_staging(con, settings, plan, staged)
