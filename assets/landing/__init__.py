"""landing: which inbox files are new (by content hash)."""

from contextlib import closing

import dagster as dg

from assets.grain import grain_check, grain_check_spec
from assets.metadata import table_metadata
from pipelines.ingest.landing import land_files
from pipelines.ingest.run import start_batch
from pipelines.resources import KarteWarehouse
from pipelines.warehouse.grain import FILE_CONTENT, FILE_ID, high_water

KEY = ["landing", "file_manifest"]


@dg.asset(key=KEY, group_name="landing", kinds={"duckdb"},
          check_specs=[grain_check_spec(FILE_ID, KEY), grain_check_spec(FILE_CONTENT, KEY)])
def file_manifest(karte: KarteWarehouse):
    """ops.file_manifest: one row per distinct inbox file content (sha256); a file seen before is skipped."""
    settings = karte.settings()
    with closing(karte.connect()) as con:
        last_file_id = high_water(con, FILE_ID)
        batch_id = start_batch(con, str(settings.inbox))
        result = land_files(con, settings.inbox, batch_id)
        yield dg.MaterializeResult(metadata=table_metadata(
            con, "ops.file_manifest", batch_id=batch_id, files_seen=result.files_seen,
            files_new=result.files_new, files_skipped_duplicate=result.files_skipped_duplicate,
            files_unchanged=result.files_unchanged))
        for grain in (FILE_ID, FILE_CONTENT):
            yield grain_check(con, grain, last_file_id, KEY)
