"""The one Dagster code location (workspace.yaml): every asset, check, job, schedule and sensor."""

import dagster as dg

from assets.core import core_assets
from assets.landing import file_manifest
from assets.ops import run_summary
from assets.raw import raw_layer
from assets.reports import quality
from assets.staging import staging_assets
from pipelines.jobs import inbox_sensor, ingest_job, nightly_ingest
from pipelines.resources import KarteWarehouse

all_assets = [file_manifest, raw_layer, *staging_assets, *core_assets, run_summary, quality]

defs = dg.Definitions(
    assets=all_assets,
    jobs=[ingest_job],
    schedules=[nightly_ingest],
    sensors=[inbox_sensor],
    resources={"karte": KarteWarehouse()},
)
