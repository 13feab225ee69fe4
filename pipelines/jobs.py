"""Jobs, schedule and sensor; and `run_all_assets`, the in-process run behind `karte run` / `make run`."""

import hashlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from pipelines.config import Settings
from pipelines.ingest.landing import InboxError, scan_inbox
from pipelines.reports.adoption.report import TABLES as ADOPTION_TABLES
from pipelines.resources import KarteWarehouse
from pipelines.warehouse import WarehouseError, connect

# DuckDB allows one writing process per file: the steps of a run share it one after another.
ingest_job = dg.define_asset_job("ingest_job", selection=dg.AssetSelection.all(),
                                 executor_def=dg.in_process_executor,
                                 description="Inbox → landing → raw → staging → core → ops → reports.")

nightly_ingest = dg.ScheduleDefinition(job=ingest_job, cron_schedule="0 2 * * *", execution_timezone="Asia/Tokyo",
                                       name="nightly_ingest", default_status=dg.DefaultScheduleStatus.STOPPED)

# The adoption report, month by month (also part of every full run, read on the latest data day).
adoption_report_job = dg.define_asset_job(
    "adoption_report_job", selection=dg.AssetSelection.assets(*[dg.AssetKey(["reports", n]) for n in ADOPTION_TABLES]),
    executor_def=dg.in_process_executor, description="reports.adoption_*: the monthly adoption report.")


@dg.schedule(job=adoption_report_job, cron_schedule="0 6 1 * *", execution_timezone="Asia/Tokyo",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def monthly_adoption_report(context: dg.ScheduleEvaluationContext):
    """On the 1st at 06:00 JST: the adoption report as of the last day of the month just ended."""
    tick = context.scheduled_execution_time or datetime.now(UTC)
    as_of = tick.astimezone(ZoneInfo("Asia/Tokyo")).date().replace(day=1) - timedelta(days=1)
    return dg.RunRequest(run_key=f"adoption-{as_of}", tags={"karte/as_of": as_of.isoformat()},
                         run_config={"ops": {"adoption_report": {"config": {"as_of": as_of.isoformat()}}}})


@dg.sensor(job=ingest_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def inbox_sensor(context: dg.SensorEvaluationContext, karte: KarteWarehouse):
    """Starts a run when the inbox holds a file (path, size, mtime) not seen before."""
    settings = karte.settings()
    try:
        files = scan_inbox(settings.inbox)
    except InboxError as exc:
        return dg.SkipReason(str(exc))
    try:
        con = connect(settings.warehouse, read_only=True)
    except WarehouseError as exc:  # missing (first run) or busy (a run is writing)
        if settings.warehouse.exists():
            return dg.SkipReason(str(exc))
        seen = set()
    else:
        with con:
            seen = set(con.execute("SELECT path, size_bytes, mtime_ns FROM ops.file_sighting_cache").fetchall())
    new = sorted(f.relpath for f in files if (f.relpath, f.size, f.mtime_ns) not in seen)
    if not new:
        return dg.SkipReason("no new inbox files")
    run_key = hashlib.sha256("\n".join(new).encode()).hexdigest()[:16]
    return dg.RunRequest(run_key=run_key, tags={"karte/new_files": str(len(new))})


def run_all_assets(settings: Settings) -> dict:
    """Materialise every asset in-process (what the job does) and return the run's receipt."""
    from pipelines.definitions import all_assets

    resource = KarteWarehouse(warehouse=str(settings.warehouse), inbox=str(settings.inbox),
                              reports=str(settings.reports), archive=str(settings.archive or ""))
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    result = dg.materialize(all_assets, resources={"karte": resource}, raise_on_error=False, run_config=quiet)
    summary, reports = {}, []
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat.asset_key == dg.AssetKey(["ops", "run_summary"]):
            summary = mat.metadata["summary"].value
        if mat.asset_key.path[0] == "reports" and "files" in mat.metadata:
            reports += [p for p in mat.metadata["files"].value if p not in reports]
    evaluations = result.get_asset_check_evaluations()
    failed = [f"{e.asset_key.to_user_string()}:{e.check_name}" for e in evaluations if not e.passed]
    return {"success": result.success and not failed, "ingest": summary, "reports": reports,
            "checks_passed": len(evaluations) - len(failed), "checks_failed": len(failed), "failed_checks": failed}


# Scale-out (docs/scale_out.md): the same ingest as map steps per (arrival day × sender) partition running in
# parallel, merged by one writer. Multiprocess here; the dask job is the template for a cluster (Celery and
# Kubernetes take the same graph with their executors as run configuration).
#: map ops per phase in the dask job (the plan may use fewer: ops.plan_fixed_shards.config.shards)
DASK_SHARDS = 4


def _partitioned_jobs() -> tuple[dg.JobDefinition, dg.JobDefinition]:
    from dagster_dask import dask_executor

    from assets.partitioned import fixed_shard_ingest, partitioned_ingest

    multiprocess = partitioned_ingest.to_job(
        name="partitioned_ingest_job", executor_def=dg.multiprocess_executor.configured(
            # forked from a server that has imported the code location once: a step starts in ~0.1 s, not ~5 s
            {"max_concurrent": 2, "start_method": {"forkserver": {"preload_modules": ["pipelines.definitions"]}}}),
        description="Ingest with map steps per (arrival day × sender) partition in parallel processes.")
    # dagster-dask plans every step up front and does not run dynamic outputs: a fixed number of map ops
    dask = fixed_shard_ingest(DASK_SHARDS).to_job(
        name="partitioned_ingest_dask_job", executor_def=dask_executor,
        description="The partitioned ingest on a dask cluster (run config execution.config.cluster).")
    return multiprocess, dask


partitioned_ingest_job, partitioned_ingest_dask_job = _partitioned_jobs()
