"""The one Dagster code location (workspace.yaml): every asset, check, job, schedule and sensor."""

import dagster as dg

from assets.core import core_assets
from assets.core.access_chain import (
    access_chain_full_verification,
    access_event_hash_chain,
    weekly_full_chain_verification,
)
from assets.landing import file_manifest
from assets.ops import run_summary
from assets.raw import raw_layer
from assets.reports import quality
from assets.reports.adoption import adoption_report
from assets.reports.audit import audit
from assets.reports.checkups import checkup_report
from assets.staging import staging_assets
from assets.views import view_assets
from pipelines.jobs import (
    adoption_report_job,
    inbox_sensor,
    ingest_job,
    monthly_adoption_report,
    nightly_ingest,
    partitioned_ingest_dask_job,
    partitioned_ingest_job,
)
from pipelines.resources import KarteWarehouse

all_assets = [file_manifest, raw_layer, *staging_assets, *core_assets, run_summary, quality]
all_assets += view_assets  # analysts' ViewDefinitions in data/views/ (assets/views)
all_assets += [audit, access_event_hash_chain]  # the audit report and the access log's hash-chain check
all_assets += [adoption_report]  # reports.adoption_*: the rollout against the 2030 target (monthly schedule)
all_assets += [checkup_report]  # reports.checkup_*: 特定健診 results and participation

defs = dg.Definitions(
    assets=all_assets,
    jobs=[ingest_job, adoption_report_job, partitioned_ingest_job, partitioned_ingest_dask_job,
          access_chain_full_verification],
    schedules=[nightly_ingest, monthly_adoption_report, weekly_full_chain_verification],
    sensors=[inbox_sensor],
    resources={"karte": KarteWarehouse()},
)
