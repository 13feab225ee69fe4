"""The partitioned ingest without Dagster: map steps over a process pool, reduce steps in this process.
Same result as `pipelines.ingest.run.ingest` (tests/scale/test_partitioned.py); what `karte bench` times."""

from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from functools import partial
from multiprocessing import get_context
from pathlib import Path

from pipelines.config import Settings
from pipelines.ingest.run import IngestSummary
from pipelines.partitioned.mapper import parse_shard, stage_shard
from pipelines.partitioned.merge import default_lake, merge_raw, merge_staging, plan_run
from pipelines.warehouse import cap_memory, connect


def run_partitioned(settings: Settings, lake: Path | None = None, shards: int = 4,
                    workers: int = 2, ducklake: Path | None = None) -> IngestSummary:
    """`ducklake`: also publish the run to this DuckLake catalog file (pipelines/partitioned/ducklake.py)."""
    lake = Path(lake or default_lake(settings))

    def warehouse():  # every connection of the run under the ingest cap, as the Dagster ops' (connect_for_ingest)
        return closing(cap_memory(connect(settings.warehouse), settings.ingest_memory_limit))

    with warehouse() as con:
        plan = plan_run(con, settings, lake, shards, ducklake)
    # spawn, not fork: the parent has had DuckDB's threads running
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        parsed = list(pool.map(partial(parse_shard, settings), plan.shards))
        with warehouse() as con:
            merge_raw(con, plan, parsed)
        staged = list(pool.map(partial(stage_shard, settings), plan.shards))
    with warehouse() as con:
        return merge_staging(con, settings, plan, staged)
