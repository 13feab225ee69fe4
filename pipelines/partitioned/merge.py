"""The reduce steps, on the one warehouse (its single writer), in a deterministic order.

- plan_run: finish whatever an earlier run left half-done, open the batch, land the inbox (as `ingest` does)
  and cut the new files into partitions and shards.
- merge_raw: the shards' raw rows get the ids a single-process run assigns — raw ids and bundle keys are
  handed out in (file id, position in file) order, and a file's rows are contiguous in its shard — by runs of
  consecutive files of about MERGE_CHUNK_BYTES of text, each in one transaction with its file/line quarantine
  rows and its files' `parsed` flags, so the merge's memory follows the run, not the batch (the whole 4 × bench
  input in one statement ran out of the 384 MB ingest cap; one transaction for the 16 × input held 741 MiB).
- merge_staging: the shards' staging rows and ledgers by windows of raw ids, each committed with the staging
  watermarks at its end, then the core upserts and consent intervals (cheap SQL over the whole warehouse) and the
  run's summary."""

from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines.config import Settings
from pipelines.ingest import bundles as bundles_stage
from pipelines.ingest.landing import land_files
from pipelines.ingest.raw_read import CHECKUP_DOCUMENT
from pipelines.ingest.raw_windows import raw_windows
from pipelines.ingest.run import IngestSummary, archive_into_summary, run_summary, start_batch
from pipelines.partitioned.lake import Columns, ensure_table, load_table, order_key, parquet_files, phase_dir
from pipelines.partitioned.mapper import MapResult
from pipelines.partitioned.plan import Shard, assign_shards, pending_partitions
from pipelines.partitioned.steps import split_steps
from pipelines.views.fhirpath import sql_str
from pipelines.warehouse import get_watermark, raw_lake, set_watermark, transaction


@dataclass(frozen=True)
class Plan:
    batch_id: int
    lake: str
    shards: tuple[Shard, ...]
    files_new: int
    ducklake: str = ""  # a DuckLake catalog file the reduce publishes to (pipelines/partitioned/ducklake.py), or ""


def default_lake(settings: Settings) -> Path:
    return Path(settings.warehouse).parent / "lake"


def _catch_up(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """A run killed earlier may have left landed files unparsed or raw rows not yet staged; the partitions
    start from a warehouse where every step is level, so those are finished here, single-process."""
    parse, staging, core = split_steps(settings)
    top = raw_lake.last_raw_id(con)
    behind = con.execute("SELECT count(*) FROM ops.file_manifest WHERE NOT parsed").fetchone()[0] or any(
        get_watermark(con, name) < top for name, _ in staging + core if not name.startswith("staging.bundle"))
    if behind:
        for _, step in [parse, *staging, *core]:
            step(con)


def plan_run(con: duckdb.DuckDBPyConnection, settings: Settings, lake: Path, shards: int,
             ducklake: Path | None = None) -> Plan:
    """Land the batch and cut it into shards, on `con` as the caller opened it (the run and the Dagster ops open
    it through ingest_connection, under the ingest caps)."""
    _catch_up(con, settings)
    batch_id = start_batch(con, str(settings.inbox))
    landing = land_files(con, settings.inbox, batch_id)
    cut = assign_shards(batch_id, str(lake), pending_partitions(con, settings.inbox), shards)
    return Plan(batch_id, str(lake), tuple(cut), landing.files_new, str(ducklake or ""))


def _schemas(results: list[MapResult]) -> dict[str, Columns]:
    merged: dict[str, Columns] = {}
    for result in results:
        for table, columns in result.schemas.items():
            if table in merged and merged[table] != columns:
                raise RuntimeError(f"shards disagree on the columns of {table}: {merged[table]} vs {columns}")
            merged[table] = columns
    return merged


def _stage_frame(con: duckdb.DuckDBPyConnection, name: str, like: str, files: list[str],
                 file_ids: tuple[int, int], kind: str = "TABLE") -> None:
    """Temp table (or view) `name`: the rows of `files` (Parquet shaped like table `like`) of file ids first..last."""
    source = (f"read_parquet([{', '.join(sql_str(f) for f in files)}], hive_partitioning = false)" if files
              else f"(SELECT * FROM {like} LIMIT 0)")
    first, last = (int(i) for i in file_ids)  # a view's body cannot hold parameters
    con.execute(f"CREATE OR REPLACE TEMP {kind} {name} AS SELECT * FROM {source} "
                f"WHERE file_id BETWEEN {first} AND {last}")


#: text merged into raw per statement, counted as the raw step counts its groups (a ZIP at its unpacked size)
MERGE_CHUNK_BYTES = 64 * 1024**2


def _file_runs(sizes: dict[int, int]) -> list[tuple[int, int]]:
    """(first, last) file id of consecutive runs of the files (id → unpacked bytes, as the plan weighed them)
    holding about MERGE_CHUNK_BYTES each."""
    runs, first, size = [], None, 0
    for file_id in sorted(sizes):
        first = file_id if first is None else first
        size += sizes[file_id]
        if size >= MERGE_CHUNK_BYTES:
            runs.append((first, file_id))
            first, size = None, 0
    if first is not None:
        runs.append((first, max(sizes)))
    return runs


class MissingShardError(RuntimeError):
    """A planned shard brought no map result: merging would mark its files parsed without their rows."""


def _every_shard_mapped(plan: Plan, results: list[MapResult]) -> None:
    missing = sorted({s.index for s in plan.shards} - {r.shard.index for r in results})
    if missing:
        raise MissingShardError(
            f"shards {missing} of batch {plan.batch_id} were planned but not mapped (a fixed-shard graph with fewer "
            f"map ops than the plan's {len(plan.shards)} shards?); nothing was merged, the next run retries")


_LISTED_FILES = "file_id IN (SELECT unnest(?))"


def merge_raw(con: duckdb.DuckDBPyConnection, plan: Plan, results: list[MapResult]) -> int:
    """Raw rows of every shard into the warehouse with single-process ids; returns the rows written."""
    dest = phase_dir(Path(plan.lake), plan.batch_id, "raw")
    con.execute("SET enable_progress_bar = false")  # bulk loads would draw one on the run's terminal
    _every_shard_mapped(plan, results)
    _schemas(results)  # shards must agree on the layout
    file_ids = sorted(f for shard in plan.shards for f in shard.file_ids)
    # IN (SELECT unnest(?)), not IN ?: a list parameter is matched row by row (pipelines/ingest/raw.py)
    if file_ids and con.execute(f"SELECT bool_and(parsed) FROM ops.file_manifest WHERE {_LISTED_FILES}",
                                [file_ids]).fetchone()[0]:
        return 0  # this step already committed (a re-executed step must not load the rows twice)
    written = 0
    sources = {table: parquet_files(dest, table) for table in ("raw.resource", "raw.bundle", "ops.quarantine")}
    for first, last in _file_runs({f: size for shard in plan.shards for f, size in shard.file_sizes.items()}):
        run_files = [f for f in file_ids if first <= f <= last]
        # Each run commits with its files' `parsed` flags: the transaction holds one run's bundles and quarantine
        # rows, not the batch's (at 16 × the sample one transaction took the merging process to 741 MiB). A
        # re-executed step skips the runs already in; a run killed half-way leaves a prefix of the files parsed,
        # and whoever parses the rest numbers them on, in file order, as a single-process run would.
        with transaction(con):
            if not con.execute(f"SELECT bool_and(parsed) FROM ops.file_manifest WHERE {_LISTED_FILES}",
                               [run_files]).fetchone()[0]:
                written += _merge_raw_run(con, sources, (first, last))
                con.execute(f"UPDATE ops.file_manifest SET parsed = true WHERE {_LISTED_FILES}", [run_files])
    return written


def _merge_raw_run(con: duckdb.DuckDBPyConnection, sources: dict[str, list[str]], run: tuple[int, int]) -> int:
    """One run of consecutive files' raw rows, bundles and file/line quarantine rows, with ids continuing from
    the warehouse's (the caller's transaction)."""
    # the records' text is read where it lies, once, by the lake write below: a copy of a run's ≈ 64 MiB of
    # JSON in a temp table stayed in the merge's memory (at 4 × the input the merging process's peak)
    _stage_frame(con, "new_resource", "raw.resource", sources["raw.resource"], run, kind="VIEW")
    _stage_frame(con, "new_bundle", "raw.bundle", sources["raw.bundle"], run)
    _stage_frame(con, "new_quarantine", "ops.quarantine", sources["ops.quarantine"], run)
    raw_base = raw_lake.last_raw_id(con)
    bundle_base = con.execute("SELECT coalesce(max(bundle_key), 0) FROM raw.bundle").fetchone()[0]
    con.execute("""CREATE OR REPLACE TEMP TABLE raw_ids AS
                   SELECT file_id, raw_id AS local_id, ? + row_number() OVER (ORDER BY file_id, raw_id) AS raw_id
                   FROM new_resource""", [raw_base])
    con.execute("""CREATE OR REPLACE TEMP TABLE bundle_keys AS
                   SELECT file_id, bundle_key AS local_key,
                          ? + row_number() OVER (ORDER BY file_id, bundle_key) AS bundle_key
                   FROM new_bundle""", [bundle_base])
    written = raw_lake.append(
        con, """SELECT i.raw_id, n.file_id, n.batch_id, k.bundle_key, n.line_no, n.entry_index, n.full_url,
                       n.resource_type, n.resource
                FROM new_resource n JOIN raw_ids i ON i.file_id = n.file_id AND i.local_id = n.raw_id
                LEFT JOIN bundle_keys k ON k.file_id = n.file_id AND k.local_key = n.bundle_key
                ORDER BY i.raw_id""")
    con.execute(
        """INSERT INTO raw.bundle (bundle_key, file_id, batch_id, line_no, entry_count, entry_types,
                                   first_raw_id, last_raw_id, envelope)
           SELECT k.bundle_key, n.file_id, n.batch_id, n.line_no, n.entry_count, n.entry_types,
                  e.first_raw_id, e.last_raw_id, n.envelope
           FROM new_bundle n JOIN bundle_keys k ON k.file_id = n.file_id AND k.local_key = n.bundle_key
           LEFT JOIN (SELECT bundle_key, min(raw_id) AS first_raw_id, max(raw_id) AS last_raw_id
                      FROM raw.resource WHERE raw_id > ? AND bundle_key IS NOT NULL GROUP BY ALL) e
                ON e.bundle_key = k.bundle_key
           ORDER BY k.bundle_key""", [raw_base])
    con.execute(
        """INSERT INTO ops.quarantine BY NAME
           SELECT q.* REPLACE (i.raw_id AS raw_id, k.bundle_key AS bundle_key)
           FROM new_quarantine q
           LEFT JOIN raw_ids i ON i.file_id = q.file_id AND i.local_id = q.raw_id
           LEFT JOIN bundle_keys k ON k.file_id = q.file_id AND k.local_key = q.bundle_key
           ORDER BY q.file_id, q.line_no NULLS FIRST""")
    con.execute("DROP VIEW new_resource")
    for name in ("new_bundle", "new_quarantine", "raw_ids", "bundle_keys"):
        con.execute(f"DROP TABLE {name}")
    return written


#: 特定健診 documents per staging merge window: one document stages ≈ 46 result rows (40,688 from 891 on the
#: sample), and at 16 × the sample the first window of ids alone held 663,613 of them (the merging process
#: 625 MiB). Four times the staging steps' own cut: every window costs its statements and footers (at 4 × the
#: sample, cut at 500: 11 windows, 1.9 s of loads; at 2,000: 5 windows, 1.1 s, and the same peak;
#: docs/capacity_history.md, thirteenth session)
MERGE_HEAVY_ROWS = 2_000


def _load_staging(con: duckdb.DuckDBPyConnection, dest: Path, schemas: dict[str, Columns],
                  watermarks: dict[str, int]) -> None:
    """The shards' staging rows and ledgers, by windows of raw ids as a single-process staging step takes them
    (bundle-aligned), each window one transaction with the staging watermarks moved to its end: the transaction
    holds a window's rows, not the batch's (one transaction for everything held the 4 × sample's 171 MiB of staged
    rows in memory until its commit; at 16 × the merging process reached 693 MiB loading them). Every raw-id
    consumer reaches the window's end together, staging.bundle (counted in bundle keys) the last bundle the window
    holds, so a run killed between windows leaves a warehouse whose staging is level with its watermarks: the
    re-executed merge goes on from there, a single-process run stages the rest itself. A row is in the window of
    its raw id, else of its bundle; a row with neither goes with the last window."""
    with transaction(con):
        for table, columns in sorted(schemas.items()):
            ensure_table(con, table, columns)
    raw_consumers = sorted(c for c in watermarks if c != bundles_stage.CONSUMER)
    if not raw_consumers:
        return
    # the consumers the shards took furthest move together, window by window: where the first stands, all do
    lead = max(raw_consumers, key=lambda c: (watermarks[c], c))
    lo, hi = get_watermark(con, lead), watermarks[lead]
    if lo >= hi:  # a re-executed step: every window is in
        return
    spans = {table: _file_spans(con, parquet_files(dest, table)) for table in schemas}
    for start, end in raw_windows(con, lo, hi, heavy_type=CHECKUP_DOCUMENT, heavy_rows=MERGE_HEAVY_ROWS):
        last = end >= hi
        bundles = (get_watermark(con, bundles_stage.CONSUMER),
                   watermarks.get(bundles_stage.CONSUMER, 0) if last else _last_bundle(con, end))
        with transaction(con):
            for table, columns in sorted(schemas.items()):
                where = _window_rows({name for name, _ in columns}, (start, end), bundles, last)
                files = [f for f, span in spans[table].items() if last or _may_hold(span, (start, end), bundles)]
                load_table(con, table, files, order_key(columns), where)
            for consumer, target in sorted(watermarks.items()):
                reached = bundles[1] if consumer == bundles_stage.CONSUMER else min(target, end)
                set_watermark(con, consumer, max(reached, get_watermark(con, consumer)))
    # committed rows stay in memory until DuckDB checkpoints (by the size of its WAL): the core upserts that follow
    # ran beside ≈ 100 MiB of them (the merging process's checkup upsert at 4 × the sample: 527 against 434 MiB)
    con.execute("CHECKPOINT")


#: per hand-over file: key column → (lowest, highest, holds nulls); None where the footer states no bounds
Span = dict[str, tuple[int, int, bool] | None]


def _file_spans(con: duckdb.DuckDBPyConnection, files: list[str]) -> dict[str, Span]:
    """Each file's raw id and bundle key bounds, from the Parquet footers, read once (a window that read every file
    of every table: the loads at 16 × the sample 11.1 s, against 3.3 s reading only the files that may hold it)."""
    spans: dict[str, Span] = {f: {} for f in files}
    if not files:
        return spans
    for name, column, low, high, nulls in con.execute(
            """SELECT file_name, path_in_schema, min(try_cast(stats_min_value AS BIGINT)),
                      max(try_cast(stats_max_value AS BIGINT)),
                      sum(stats_null_count) > 0 OR bool_or(stats_null_count IS NULL OR stats_min_value IS NULL)
               FROM parquet_metadata(?) WHERE path_in_schema IN ('raw_id', 'bundle_key') GROUP BY ALL""",
            [files]).fetchall():
        spans[name][column] = (low, high, nulls) if low is not None and high is not None else None
    return spans


def _may_hold(span: Span, raw_ids: tuple[int, int], bundle_keys: tuple[int, int]) -> bool:
    """Whether a file may hold rows of a window that is not the last: a key range meets the window's, or the file
    has rows without a raw id (they go by bundle), or its footer gives no bounds."""
    for column, (lo, hi) in (("raw_id", raw_ids), ("bundle_key", bundle_keys)):
        if column not in span:
            continue
        bounds = span[column]
        if bounds is None or (bounds[0] <= hi and bounds[1] > lo):
            return True
        if column == "raw_id" and not bounds[2]:
            return False  # every row has a raw id, none in the window
    return False


def _last_bundle(con: duckdb.DuckDBPyConnection, end: int) -> int:
    """The highest bundle key whose rows start at or before raw id `end` (windows never split a bundle)."""
    return con.execute("SELECT coalesce(max(bundle_key), 0) FROM raw.bundle WHERE first_raw_id <= ?",
                       [end]).fetchone()[0]


def _window_rows(columns: set[str], raw_ids: tuple[int, int], bundle_keys: tuple[int, int], last: bool) -> str:
    """SQL selecting a window's rows of a table with `columns`: by raw id, else by bundle key, else in the last."""
    keys = [("raw_id", raw_ids), ("bundle_key", bundle_keys)]
    present = [(column, bounds) for column, bounds in keys if column in columns]
    clauses, unkeyed = [], []
    for column, (lo, hi) in present:
        clauses.append(f"({' AND '.join(unkeyed + [f'{column} > {int(lo)} AND {column} <= {int(hi)}'])})")
        unkeyed.append(f"{column} IS NULL")
    if last:
        clauses.append(f"({' AND '.join(unkeyed) or 'true'})")
    return " OR ".join(clauses) or "false"


def merge_staging(con: duckdb.DuckDBPyConnection, settings: Settings, plan: Plan,
                  results: list[MapResult]) -> IngestSummary:
    """Staging rows and ledgers of every shard, the staging watermarks, then core and the run's summary."""
    dest = phase_dir(Path(plan.lake), plan.batch_id, "staging")
    con.execute("SET enable_progress_bar = false")
    _, _, core_steps = split_steps(settings)
    watermarks: dict[str, int] = {}  # consumer → where the shards left it (the highest shard's id)
    for result in results:
        for consumer, last in result.watermarks.items():
            watermarks[consumer] = max(last, watermarks.get(consumer, 0))
    _load_staging(con, dest, _schemas(results), watermarks)
    for _, step in core_steps:
        step(con)
    summary = run_summary(con, plan.batch_id, settings)
    if plan.ducklake:  # also when re-executed: the first execution may have failed while publishing
        from pipelines.partitioned.ducklake import publish

        catalog = Path(plan.ducklake)
        publish(con, Path(plan.lake), plan.batch_id, _schemas(results), catalog,
                catalog.parent / f"{catalog.stem}.data")
    if settings.archive is not None:  # last: a merge that fails leaves every file in the inbox
        archive_into_summary(con, settings, summary)
    return summary
