"""Opening the warehouse safely: one-line errors instead of tracebacks, layout applied on write."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb

SCHEMA_SQL = (Path(__file__).parent / "schema.sql").read_text(encoding="utf-8")

# Extensions cannot be downloaded here (closed networks); fail fast instead of hanging on a fetch. A new
# warehouse file is created in storage format v1.2.0 (an existing file keeps its own; DuckDB cannot lower it):
# the newest format stores strings as DICT_FSST, which made the national-scale warehouse larger (2,714 against
# 2,560 MiB) and its adoption report slower (10.2 s against 9.05 s; docs/capacity_history.md, third session).
# (The raw JSON, which v1.2.0 was first chosen to compress with zstd, now lives in zstd Parquet:
# pipelines/warehouse/raw_lake.py.)
_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
           "storage_compatibility_version": "v1.2.0"}


class WarehouseError(RuntimeError):
    """An operational failure opening or writing the warehouse; str() is a one-line message."""


def connect(path: str | os.PathLike, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    path = Path(path)
    if read_only and not path.exists():
        raise WarehouseError(f"warehouse {path} does not exist; run `karte ingest` first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only, config=_CONFIG)
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" in text.lower():
            raise WarehouseError(f"warehouse {path} is in use by another process (locked); try again later") from exc
        raise WarehouseError(f"cannot open warehouse {path}: {text.splitlines()[0]}") from exc
    except duckdb.Error as exc:
        raise WarehouseError(f"{path} is not a usable DuckDB warehouse: {str(exc).splitlines()[0]}") from exc
    _set_session(con)
    if not read_only:
        con.execute(SCHEMA_SQL)
        from pipelines.warehouse.raw_lake import ensure_raw_lake
        from pipelines.warehouse.tables import create_tables

        create_tables(con)
        ensure_raw_lake(con)
    return con


def _set_session(con: duckdb.DuckDBPyConnection) -> None:
    # Instants are stored with their offset; UTC as the session zone keeps derived values machine-independent.
    con.execute("SET TimeZone = 'UTC'")


def sibling_cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Another connection to `con`'s database (con.cursor()) with the same session settings (DuckDB keeps the
    time zone per connection, the memory cap per database): its own transactions and temp tables, for work on
    another thread. Close it before `con` (closing `con` closes it). Safe to call on another thread while `con`
    runs a query: it runs nothing on `con`."""
    own = con.cursor()
    _set_session(own)
    return own


def cap_duckdb(con: duckdb.DuckDBPyConnection, memory_limit: str, threads: int | None = None
               ) -> duckdb.DuckDBPyConnection:
    """Cap DuckDB's buffer pool (it otherwise grows to 80 % of RAM caching what it wrote), keep it from caching the
    Parquet files it reads (their footers only) and, where given, cap the threads a query may use (otherwise one
    per core). Ingest runs under Settings.ingest_memory_limit, so its peak follows the step windows, not the
    warehouse size, and Settings.ingest_threads, so that its lanes (or map processes) side by side do not each
    spread a query over every core. The settings hold for the database (every cursor of it) until changed."""
    con.execute("SET memory_limit = ?", [memory_limit])
    # DuckDB keeps the Parquet it reads (the raw lake's files, the partitioned run's hand-over files) cached in
    # memory besides the OS page cache; ingest reads each window once: 47 MiB of the partitioned merging process's
    # peak at 4 × the sample (docs/capacity_history.md, twelfth session)
    con.execute("SET enable_external_file_cache = false")
    # ...but it keeps their footers: every windowed statement over raw.resource otherwise parses every lake file's
    # row-group statistics again to skip them, a cost that grows with the lake (a 400-id window at 16 × the
    # sample: 3.3 ms a statement, 1.6 with the footers kept; the files are never rewritten in place)
    con.execute("SET GLOBAL parquet_metadata_cache = true")  # GLOBAL: a plain SET holds for this cursor only
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    return con


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All-or-nothing: a batch step either commits whole or leaves the warehouse as it was."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")
