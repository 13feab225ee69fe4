"""raw: verbatim input with provenance (one row per bundle entry, NDJSON line or registry row)."""

import dagster as dg

from assets.metadata import table_metadata
from pipelines.ingest.raw import parse_landed_files
from pipelines.resources import KarteWarehouse


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["raw", "resource"], group_name="raw", kinds={"duckdb"}, deps=[["landing", "file_manifest"]],
                     description="raw.resource: one row per input record (bundle entry, NDJSON line, registry row), "
                                 "verbatim JSON + file, line and entry."),
        dg.AssetSpec(["raw", "bundle"], group_name="raw", kinds={"duckdb"}, deps=[["landing", "file_manifest"]],
                     description="raw.bundle: one row per submitted bundle envelope (entries in raw.resource)."),
    ]
)
def raw_layer(karte: KarteWarehouse):
    """Parses every landed, not yet parsed file; unreadable files and lines go to ops.quarantine."""
    with karte.ingest_connection() as con:
        written = parse_landed_files(con, karte.settings().inbox, karte.settings().pseudonym_key)
        yield dg.MaterializeResult(asset_key=["raw", "resource"],
                                   metadata=table_metadata(con, "raw.resource", rows_written=written))
        yield dg.MaterializeResult(asset_key=["raw", "bundle"], metadata=table_metadata(con, "raw.bundle"))
