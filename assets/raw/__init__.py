"""raw: verbatim input with provenance (one row per bundle entry, NDJSON line or registry row)."""

import dagster as dg

from assets.grain import grain_check, grain_check_spec
from assets.metadata import table_metadata
from pipelines.ingest.raw import parse_landed_files
from pipelines.resources import KarteWarehouse
from pipelines.warehouse.grain import RAW_BUNDLE, high_water

BUNDLE = ["raw", "bundle"]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["raw", "resource"], group_name="raw", kinds={"duckdb"}, deps=[["landing", "file_manifest"]],
                     description="raw.resource: one row per input record (bundle entry, NDJSON line, registry row), "
                                 "verbatim JSON + file, line and entry."),
        dg.AssetSpec(BUNDLE, group_name="raw", kinds={"duckdb"}, deps=[["landing", "file_manifest"]],
                     description="raw.bundle: one row per submitted bundle envelope (entries in raw.resource)."),
    ],
    check_specs=[grain_check_spec(RAW_BUNDLE, BUNDLE)],
)
def raw_layer(karte: KarteWarehouse):
    """Parses every landed, not yet parsed file; unreadable files and lines go to ops.quarantine."""
    with karte.ingest_connection() as con:
        last_bundle_key = high_water(con, RAW_BUNDLE)
        written = parse_landed_files(con, karte.settings().inbox, karte.settings().pseudonym_key)
        yield dg.MaterializeResult(asset_key=["raw", "resource"],
                                   metadata=table_metadata(con, "raw.resource", rows_written=written))
        yield dg.MaterializeResult(asset_key=BUNDLE, metadata=table_metadata(con, "raw.bundle"))
        yield grain_check(con, RAW_BUNDLE, last_bundle_key, BUNDLE)
