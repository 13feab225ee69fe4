"""Writing rejections: one ops.quarantine row per (unit, broken rule) and one ops.record_outcome row per
rejected record, so that counts in = counts out holds however many rules a record breaks."""

import duckdb
import polars as pl

FAILURE_SCHEMA = {
    "raw_id": pl.Int64,
    "rule_id": pl.String,
    "message": pl.String,
    "rule_order": pl.Int32,
    "institution_number": pl.String,
    "resource_identifier": pl.String,
}


def quarantine_resources(con: duckdb.DuckDBPyConnection, failures: pl.DataFrame) -> int:
    """Quarantine resource-level failures (frame with FAILURE_SCHEMA columns; missing context columns
    may be null). Must run inside the caller's transaction. Returns the number of records rejected."""
    if failures.is_empty():
        return 0
    failures = failures.select([pl.col(c).cast(t) if c in failures.columns else pl.lit(None, t).alias(c)
                                for c, t in FAILURE_SCHEMA.items()]).unique(maintain_order=True)
    first, last = failures["raw_id"].min(), failures["raw_id"].max()
    # The failures' raw id span bounds the reads of raw.resource and raw.bundle (both in raw id order): joined
    # whole, each quarantine read every bundle envelope ever landed (29 -> 17 ms for 300 failures at 16 x the
    # bench sample, and growing with the warehouse)
    span = "true" if first is None else f"r.raw_id > {int(first) - 1} AND r.raw_id <= {int(last)}"
    bundles = ("raw.bundle" if first is None else
               f"(SELECT bundle_key, envelope FROM raw.bundle WHERE last_raw_id >= {int(first)} "
               f"AND first_raw_id <= {int(last)})")
    # only the failing records' files: joined whole, the manifest (every file ever received) was what DuckDB
    # built its hash table from, a cost that grew with the warehouse (10 of 14 ms a statement at 16 × the sample)
    files = (f"(SELECT file_id, path, sender FROM ops.file_manifest WHERE file_id IN "
             f"(SELECT r.file_id FROM raw.resource r WHERE r.raw_id IN (SELECT raw_id FROM resource_failure) "
             f"AND {span}))")
    con.register("resource_failure", failures)
    try:
        con.execute(
            f"""
            INSERT INTO ops.quarantine (batch_id, file_id, source_file, line_no, entry_index, bundle_key, raw_id,
                scope, institution_number, bundle_identifier, resource_type, resource_identifier, rule_id, message,
                record_count, raw)
            SELECT r.batch_id, r.file_id, m.path, r.line_no, r.entry_index, r.bundle_key, r.raw_id, 'resource',
                   coalesce(f.institution_number, m.sender), b.envelope->>'$.identifier.value', r.resource_type,
                   f.resource_identifier, f.rule_id, f.message,
                   CASE WHEN f.rule_order = min(f.rule_order) OVER (PARTITION BY f.raw_id) THEN 1 ELSE 0 END,
                   r.resource::VARCHAR
            FROM resource_failure f
            JOIN raw.resource r USING (raw_id)
            JOIN {files} m USING (file_id)
            LEFT JOIN {bundles} b USING (bundle_key)
            WHERE {span}
            """
        )
        return record_outcomes(con, "SELECT DISTINCT raw_id FROM resource_failure", "quarantined", None,
                               None if first is None else (first - 1, last))
    finally:
        con.unregister("resource_failure")


def record_outcomes(con: duckdb.DuckDBPyConnection, raw_ids_sql: str, outcome: str | None, table: str | None,
                    window: tuple[int, int] | None = None) -> int:
    """Say where each record of `raw_ids_sql` ended; returns how many. The query yields raw_id (repeats are one
    record), or, with `outcome` None, one row per record of raw_id and its outcome: one statement, so one read of
    raw.resource for the batch ids, for records ending differently. `window` (lo, hi], when every id lies in it,
    lets DuckDB read only those row groups of raw.resource (rows sit in raw_id order) instead of every one."""
    bounds = f" WHERE raw_id > {int(window[0])} AND raw_id <= {int(window[1])}" if window else ""
    records = (f"({raw_ids_sql})" if outcome is None
               else f"(SELECT DISTINCT raw_id, ? AS outcome FROM ({raw_ids_sql}))")
    # raw.resource narrowed to its two columns in a subquery of its own: joined whole to a DISTINCT, DuckDB 1.5.5
    # loses the column pruning of the lake's Parquet scan (duckdb/duckdb#22606) and decompressed every resource
    # text of the window for a batch id
    written = con.execute(
        f"""
        INSERT INTO ops.record_outcome
        SELECT r.raw_id, r.batch_id, o.outcome, ? FROM {records} o
        JOIN (SELECT raw_id, batch_id FROM raw.resource{bounds}) r ON r.raw_id = o.raw_id
        """,
        [table] if outcome is None else [table, outcome],  # in the order the statement names them
    ).fetchone()
    return written[0] if written else 0
