"""The partitioned ingest as a Dagster graph: plan → parse map (one step per shard of (arrival day × sender)
partitions) → raw merge → staging map → staging merge + core. The map steps run in parallel under whichever
executor the job uses (multiprocess here, dask / Celery / Kubernetes elsewhere: docs/scale_out.md); the plan and
merge steps are the warehouse's single writer. Thin wrappers over pipelines/partitioned."""

from pathlib import Path

import dagster as dg

from pipelines.partitioned.mapper import MapResult, parse_shard, stage_shard
from pipelines.partitioned.merge import Plan, default_lake, merge_raw, merge_staging, plan_run
from pipelines.resources import KarteWarehouse


class PartitionedIngestConfig(dg.Config):
    lake: str = ""  # Parquet lake folder; empty = `lake/` beside the warehouse
    shards: int = 4  # map steps per phase (each takes a share of the partitions, largest first)
    ducklake: str = ""  # DuckLake catalog file to publish staging + core to after the merge; empty = none


@dg.op(out={"plan": dg.Out(Plan), "shards": dg.DynamicOut()},
       description="Land the inbox, cut the new files into (arrival day × sender) partitions and shards.")
def plan_partitions(context: dg.OpExecutionContext, config: PartitionedIngestConfig, karte: KarteWarehouse):
    settings = karte.settings()
    lake = Path(config.lake) if config.lake else default_lake(settings)
    with karte.ingest_connection() as con:
        plan = plan_run(con, settings, lake, config.shards, Path(config.ducklake) if config.ducklake else None)
    context.log.info(f"batch {plan.batch_id}: {plan.files_new} new files in "
                     f"{len({p.key for s in plan.shards for p in s.partitions})} partitions, {len(plan.shards)} shards")
    yield dg.Output(plan, "plan")
    for shard in plan.shards:
        yield dg.DynamicOutput(shard, output_name="shards", mapping_key=shard.name)


@dg.op(description="Map: parse one shard's files into a scratch DuckDB, raw rows to the Parquet lake.")
def parse_partitions(shard, karte: KarteWarehouse) -> MapResult:
    return parse_shard(karte.settings(), shard)


@dg.op(out=dg.DynamicOut(), description="Reduce: raw rows into the warehouse with single-process ids.")
def merge_raw_partitions(context: dg.OpExecutionContext, plan: Plan, parsed: list[MapResult],
                         karte: KarteWarehouse):
    with karte.ingest_connection() as con:
        written = merge_raw(con, plan, parsed)
    context.log.info(f"raw: {written} rows merged; largest parse process "
                     f"{max(r.peak_rss_kib for r in parsed) // 1024 if parsed else 0} MiB")
    for shard in plan.shards:
        yield dg.DynamicOutput(shard, mapping_key=shard.name)


@dg.op(description="Map: every staging step on one shard's raw rows in a scratch DuckDB, to the Parquet lake.")
def stage_partitions(shard, karte: KarteWarehouse) -> MapResult:
    return stage_shard(karte.settings(), shard)


@dg.op(description="Reduce: staging rows into the warehouse, then core upserts, consent intervals, summary.")
def merge_staging_partitions(context: dg.OpExecutionContext, plan: Plan, staged: list[MapResult],
                             karte: KarteWarehouse) -> dict:
    with karte.ingest_connection() as con:
        summary = merge_staging(con, karte.settings(), plan, staged).as_dict()
    context.add_output_metadata({"summary": dg.MetadataValue.json(summary),
                                 "records_in": summary["records_in"], "batch_id": summary["batch_id"],
                                 # the map steps' own peaks: what a shard costs (docs/capacity.md)
                                 "largest_staging_process_mib": max((r.peak_rss_kib for r in staged), default=0) // 1024})
    return summary


@dg.graph(description="Inbox → (arrival day × sender) partitions in parallel → one warehouse, equal to `ingest`.")
def partitioned_ingest():
    plan, shards = plan_partitions()
    parsed = shards.map(parse_partitions)
    staged_shards = merge_raw_partitions(plan, parsed.collect())
    staged = staged_shards.map(stage_partitions)
    return merge_staging_partitions(plan, staged.collect())


def _shard_ops(index: int) -> tuple[dg.OpDefinition, dg.OpDefinition]:
    """Map ops bound to shard `index` of the plan (nothing to do when the plan has fewer shards)."""

    @dg.op(name=f"parse_shard_{index}", description=f"Map: parse shard {index} (see parse_partitions).")
    def parse_fixed(plan: Plan, karte: KarteWarehouse) -> list[MapResult]:
        return [parse_shard(karte.settings(), plan.shards[index])] if index < len(plan.shards) else []

    @dg.op(name=f"stage_shard_{index}", description=f"Map: stage shard {index} (see stage_partitions).")
    def stage_fixed(plan: Plan, karte: KarteWarehouse) -> list[MapResult]:
        return [stage_shard(karte.settings(), plan.shards[index])] if index < len(plan.shards) else []

    return parse_fixed, stage_fixed


@dg.op(out=dg.Out(Plan), description="Land the inbox and cut the new files into partitions and shards.")
def plan_fixed_shards(config: PartitionedIngestConfig, karte: KarteWarehouse) -> Plan:
    settings = karte.settings()
    lake = Path(config.lake) if config.lake else default_lake(settings)
    with karte.ingest_connection() as con:
        return plan_run(con, settings, lake, config.shards, Path(config.ducklake) if config.ducklake else None)


def _merge_ops(shards: int) -> tuple[dg.OpDefinition, dg.OpDefinition]:
    """The reduce ops with one named input per map op: dagster-dask does not deliver fan-in (list) inputs."""
    ins = {"plan": dg.In(Plan)} | {f"shard_{i}": dg.In(list) for i in range(shards)}

    @dg.op(ins=ins, out=dg.Out(Plan), description="Reduce: raw rows into the warehouse with single-process ids.")
    def merge_raw_fixed(karte: KarteWarehouse, plan: Plan, **parsed: list[MapResult]) -> Plan:
        with karte.ingest_connection() as con:
            merge_raw(con, plan, [r for rs in parsed.values() for r in rs])
        return plan

    @dg.op(ins=ins, description="Reduce: staging rows into the warehouse, then core, consent intervals, summary.")
    def merge_staging_fixed(karte: KarteWarehouse, plan: Plan, **staged: list[MapResult]) -> dict:
        with karte.ingest_connection() as con:
            return merge_staging(con, karte.settings(), plan, [r for rs in staged.values() for r in rs]).as_dict()

    return merge_raw_fixed, merge_staging_fixed


def fixed_shard_ingest(shards: int) -> dg.GraphDefinition:
    """The same map/reduce with `shards` map ops per phase fixed when the job is built, for executors that plan
    every step up front and do not run dynamic outputs (dagster-dask). Run it with ops.plan_fixed_shards.config
    .shards ≤ `shards`."""
    ops = [_shard_ops(i) for i in range(shards)]
    merge_raw_fixed, merge_staging_fixed = _merge_ops(shards)

    @dg.graph(name=f"partitioned_ingest_{shards}_shards",
              description="Inbox → (arrival day × sender) partitions on a fixed number of map ops → one warehouse.")
    def graph():
        plan = plan_fixed_shards()
        merged = merge_raw_fixed(plan=plan, **{f"shard_{i}": parse(plan) for i, (parse, _) in enumerate(ops)})
        return merge_staging_fixed(plan=merged, **{f"shard_{i}": stage(merged) for i, (_, stage) in enumerate(ops)})

    return graph
