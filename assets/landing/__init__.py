"""landing: which inbox files are new (by content hash)."""

from contextlib import closing

import dagster as dg

from assets.metadata import table_metadata
from pipelines.ingest.landing import land_files
from pipelines.ingest.run import start_batch
from pipelines.resources import KarteWarehouse


@dg.asset(key=["landing", "file_manifest"], group_name="landing", kinds={"duckdb"})
def file_manifest(karte: KarteWarehouse) -> dg.MaterializeResult:
    """ops.file_manifest: one row per distinct inbox file content (sha256); a file seen before is skipped."""
    settings = karte.settings()
    with closing(karte.connect()) as con:
        batch_id = start_batch(con, str(settings.inbox))
        result = land_files(con, settings.inbox, batch_id)
        return dg.MaterializeResult(metadata=table_metadata(
            con, "ops.file_manifest", batch_id=batch_id, files_seen=result.files_seen,
            files_new=result.files_new, files_skipped_duplicate=result.files_skipped_duplicate,
            files_unchanged=result.files_unchanged))
