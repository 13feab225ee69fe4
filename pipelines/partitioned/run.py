"""The partitioned ingest without Dagster: map steps over a process pool, reduce steps in this process.
Same result as `pipelines.ingest.run.ingest` (tests/scale/test_partitioned.py); what `karte bench` times."""

from functools import partial
from multiprocessing import get_context
from pathlib import Path

from pipelines.config import Settings
from pipelines.ingest.run import IngestSummary, ingest_connection
from pipelines.partitioned.mapper import MapResult, parse_shard, stage_shard
from pipelines.partitioned.merge import default_lake, merge_raw, merge_staging, plan_run

#: map steps a pool process runs before a fresh one replaces it: one, as under Dagster's executors. A process
#: that ran shard after shard kept growing (at 16 × the sample on 64 shards its peak rose 421 → 666 MiB over
#: the raw phase and to 818 MiB over the staging phase), so the map processes' memory followed the input, not
#: the shard; neither emptying the seal caches, malloc_trim nor DuckDB's allocator flush settings stopped it.
#: The processes fork from a server that imported the map code once, so a fresh one costs next to nothing
#: (docs/capacity_history.md, tenth session: at 4 × the sample on 16 shards, largest map process 603 → 504–513
#: MiB, run 51 → 52 s).
MAP_STEPS_PER_PROCESS = 1
#: what the fork server imports before it forks map processes (a spawned process re-imports for ≈ 1.5 s)
MAP_PRELOAD = ["pipelines.partitioned.mapper"]


def run_partitioned(settings: Settings, lake: Path | None = None, shards: int = 4,
                    workers: int = 2, ducklake: Path | None = None,
                    map_results: list[MapResult] | None = None,
                    steps_per_process: int = MAP_STEPS_PER_PROCESS) -> IngestSummary:
    """`ducklake`: also publish the run to this DuckLake catalog file (pipelines/partitioned/ducklake.py).
    `map_results`: a list that receives every map step's result (shard, rows, the map process's peak memory).
    `steps_per_process`: map steps a pool process runs before it is replaced (memory; see MAP_STEPS_PER_PROCESS)."""
    lake = Path(lake or default_lake(settings))

    with ingest_connection(settings) as con:
        plan = plan_run(con, settings, lake, shards, ducklake)
    # a fork server, not fork: this process has had DuckDB's threads running; the server has only imported
    context = get_context("forkserver")
    context.set_forkserver_preload(MAP_PRELOAD)
    with context.Pool(workers, maxtasksperchild=steps_per_process) as pool:
        parsed = pool.map(partial(parse_shard, settings), plan.shards, chunksize=1)
        with ingest_connection(settings) as con:
            merge_raw(con, plan, parsed)
        staged = pool.map(partial(stage_shard, settings), plan.shards, chunksize=1)
    if map_results is not None:
        map_results.extend(parsed + staged)
    with ingest_connection(settings) as con:
        return merge_staging(con, settings, plan, staged)
