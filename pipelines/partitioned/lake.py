"""The lake: what map steps hand to the reduce, as Parquet laid out by partition —
`<lake>/batch=<id>/<phase>/<schema.table>/day=<arrival day>/sender=<sender>/<shard>_<n>.parquet`.

Each table's exact DuckDB column types travel beside the files (the `schemas` a map step returns), so the
reduce creates a table the first time with the types a single-process run would have given it."""

from pathlib import Path

import duckdb

from pipelines.partitioned.plan import Shard
from pipelines.views.fhirpath import sql_str
from pipelines.warehouse import raw_lake

#: a table's columns as (name, DuckDB type), in table order
Columns = list[tuple[str, str]]
#: rows per Parquet row group in the hand-over files. The writer holds a row group's pages whole: DuckDB's default
#: (122,880 rows, ≈ 150 MB of raw JSON) outgrew the 384 MB ingest cap on a 173 MB shard (one sender's day at 16 ×
#: the sample). And the raw merge reads a run of consecutive files out of every partition's file, a row group whole
#: wherever one of its rows is in the run: at 16,384 rows the merging process's raw merge rose from 381 to 462 MiB
#: between 1 × and 4 × the sample, at 2,048 (the raw lake's own size) from 379 to 445 (docs/capacity_history.md,
#: thirteenth session)
PARQUET_ROW_GROUP_ROWS = 2_048


def phase_dir(lake: Path, batch_id: int, phase: str) -> Path:
    return Path(lake) / f"batch={batch_id}" / phase


def register_file_partitions(con: duckdb.DuckDBPyConnection, shard: Shard) -> None:
    """TEMP table file_part(file_id, day, sender): the partition of every file of the shard."""
    # three lists unnested in one statement: executemany inserted row by row (0.45 s for a shard of 1,500 files,
    # in each phase of each shard)
    file_ids = [f for p in shard.partitions for f in p.file_ids]
    days = [p.day for p in shard.partitions for _ in p.file_ids]
    senders = [p.sender for p in shard.partitions for _ in p.file_ids]
    con.execute("""CREATE OR REPLACE TEMP TABLE file_part AS
                   SELECT unnest(?::BIGINT[]) AS file_id, unnest(?::VARCHAR[]) AS day, unnest(?::VARCHAR[]) AS sender""",
                [file_ids, days, senders])


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> Columns:
    schema, name = table.split(".")
    return con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ? ORDER BY column_index", [schema, name]).fetchall()


def _never_null(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    if table == raw_lake.VIEW:  # a view's columns all read as nullable; the lake checks its own on write
        return column in raw_lake.NOT_NULL
    schema, name = table.split(".")
    row = con.execute(
        "SELECT NOT is_nullable FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ? AND column_name = ?", [schema, name, column]).fetchone()
    return bool(row and row[0])


def export_tables(con: duckdb.DuckDBPyConnection, tables: list[str], dest: Path, shard: Shard) -> dict[str, Columns]:
    """Every row of `tables` as Parquet under dest/<table>/day=…/sender=…/, the partition found through the row's
    file (its own file_id, or that of its raw record or bundle). Returns each table's columns."""
    schemas = {}
    for table in tables:
        columns = table_columns(con, table)
        names = {c for c, _ in columns}
        if {"day", "sender"} & names:
            raise ValueError(f"{table} has a column named day or sender, which the lake uses as partition keys")
        joins, file_of_row = [], []
        if "file_id" in names:
            file_of_row.append("t.file_id")
        # A row whose own file_id is never null needs no join. raw.resource joined to itself by raw_id made DuckDB
        # hash one side whole, JSON included: a 173 MB shard (one sender's day at 16 × the sample) needed a
        # 117 MiB allocation and ran out of the 384 MB cap.
        if not _never_null(con, table, "file_id"):
            if "raw_id" in names:
                joins.append("LEFT JOIN raw.resource r ON r.raw_id = t.raw_id")
                file_of_row.append("r.file_id")
            if "bundle_key" in names:
                joins.append("LEFT JOIN raw.bundle b ON b.bundle_key = t.bundle_key")
                file_of_row.append("b.file_id")
        file_expr = f"coalesce({', '.join(file_of_row)})" if file_of_row else "NULL"
        target = dest / table
        target.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"""COPY (SELECT t.*, coalesce(p.day, 'unknown') AS day, coalesce(p.sender, 'unknown') AS sender
                      FROM {table} t {' '.join(joins)} LEFT JOIN file_part p ON p.file_id = {file_expr})
                TO {sql_str(target.as_posix())}
                (FORMAT parquet, PARTITION_BY (day, sender), FILENAME_PATTERN '{shard.name}_{{i}}',
                 ROW_GROUP_SIZE {PARQUET_ROW_GROUP_ROWS}, OVERWRITE_OR_IGNORE)""")
        schemas[table] = columns
    return schemas


def parquet_files(dest: Path, table: str) -> list[str]:
    return sorted(p.as_posix() for p in (dest / table).rglob("*.parquet"))


def ensure_table(con: duckdb.DuckDBPyConnection, table: str, columns: Columns) -> None:
    """Create `table` with the map step's exact types if this warehouse has not got it yet."""
    body = ", ".join(f'"{name}" {dtype}' for name, dtype in columns)
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({body})")


def load_table(con: duckdb.DuckDBPyConnection, table: str, files: list[str], order_by: str,
               where: str = "true") -> int:
    """Append the rows of `files` matching `where` (SQL over the files' columns) to `table` by column name, in
    `order_by` order (deterministic)."""
    if not files:
        return 0
    listing = ", ".join(sql_str(f) for f in files)
    return con.execute(
        f"INSERT INTO {table} BY NAME SELECT * FROM read_parquet([{listing}], hive_partitioning = false) "
        f"WHERE {where} ORDER BY {order_by}").fetchone()[0]


def order_key(columns: Columns) -> str:
    """The ids a table's rows are ordered by on load (all columns as the tie-break, so the order is total)."""
    names = [n for n, _ in columns]
    ids = [n for n in ("raw_id", "bundle_key", "file_id") if n in names]
    return ", ".join(f'"{n}"' for n in ids + [n for n in names if n not in ids]) or "ALL"
