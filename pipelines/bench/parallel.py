"""Parallel benchmark (issue 7): on one generated sample, the single-process `ingest` against the partitioned
ingest (pipelines/partitioned, map steps on a pool of `workers` processes) with 2 and 4 shards, each on a fresh
warehouse, wall-clock; and whether each partitioned warehouse holds the same row counts per table as the
single-process one (the tests compare every row). The generator writes every file "now", so the sample's
files arrive on one day and the partitions are its senders."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipelines.config import load_settings
from pipelines.generate import generate
from pipelines.ingest.run import ingest
from pipelines.partitioned.run import run_partitioned
from pipelines.warehouse import connect, raw_lake


@dataclass
class ParallelBench:
    patients: int
    records: int
    workers: int
    single_seconds: float
    partitioned_seconds: dict[str, float] = field(default_factory=dict)  # shards → seconds
    speedup: dict[str, float] = field(default_factory=dict)
    same_row_counts: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _row_counts(warehouse: Path) -> dict[str, int]:
    with closing(connect(warehouse, read_only=True)) as con:
        # raw.resource is a view over the raw lake; how many files hold it depends on how the run was cut
        tables = con.execute("SELECT schema_name || '.' || table_name FROM duckdb_tables() "
                             "WHERE schema_name IN ('raw', 'staging', 'core') AND table_name <> 'resource_file' "
                             "UNION ALL SELECT ? ORDER BY 1", [raw_lake.VIEW]).fetchall()
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for (t,) in tables}


def run_parallel_bench(patients: int = 1500, workers: int = 2, shard_counts: tuple[int, ...] = (2, 4),
                       progress: Callable[[str], None] | None = None) -> ParallelBench:
    say = progress or (lambda _: None)
    with tempfile.TemporaryDirectory(prefix="karte-bench-parallel-") as tmp:
        tmp = Path(tmp)
        say(f"generating {patients:,} patients")
        generate(tmp / "inbox", patients=patients, seed=7, fault_rate=0.02)
        say("single process")
        settings = load_settings(warehouse=tmp / "single.duckdb", inbox=tmp / "inbox")
        started = time.perf_counter()
        with closing(connect(settings.warehouse)) as con:
            records = ingest(con, settings).records_in
        bench = ParallelBench(patients, records, workers, round(time.perf_counter() - started, 2))
        single_counts = _row_counts(settings.warehouse)
        for shards in shard_counts:
            say(f"partitioned, {shards} shards on {workers} workers")
            part = load_settings(warehouse=tmp / f"part{shards}.duckdb", inbox=tmp / "inbox")
            started = time.perf_counter()
            run_partitioned(part, lake=tmp / f"lake{shards}", shards=shards, workers=workers)
            seconds = time.perf_counter() - started
            bench.partitioned_seconds[str(shards)] = round(seconds, 2)
            bench.speedup[str(shards)] = round(bench.single_seconds / seconds, 2)
            bench.same_row_counts[str(shards)] = _row_counts(part.warehouse) == single_counts
    return bench


def headline(b: dict) -> str:
    """The figures on one line (`karte bench --history`)."""
    return f"single {b['single_seconds']:.2f} s; " + ", ".join(
        f"{shards} shards ×{speedup:.2f}" for shards, speedup in b["speedup"].items())


def table(b: dict) -> str:
    lines = [(f"parallel benchmark: {b['patients']:,} patients ({b['records']:,} records), "
             f"{b['workers']} worker processes, wall clock on a shared machine"),
             f"  single process                   {b['single_seconds']:>7.2f} s"]
    for shards, seconds in b["partitioned_seconds"].items():
        same = "same row counts" if b["same_row_counts"][shards] else "ROW COUNTS DIFFER"
        lines.append(f"  partitioned, {shards:>2} shards           {seconds:>7.2f} s   "
                     f"×{b['speedup'][shards]:.2f} of single   {same}")
    return "\n".join(lines)
