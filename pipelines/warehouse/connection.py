"""Opening the warehouse safely: one-line errors instead of tracebacks, layout applied on write."""

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import duckdb

SCHEMA_SQL = (Path(__file__).parent / "schema.sql").read_text(encoding="utf-8")

# Extensions cannot be downloaded here (closed networks); fail fast instead of hanging on a fetch. A new
# warehouse file takes the newest storage format: only it compresses raw.resource's JSON with zstd (schema.sql),
# 199 → 51 MB for the bench sample, at the same ingest speed. An existing file keeps the format it was made in.
_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
           "storage_compatibility_version": "latest"}


#: rows per row group of every table written through connect(). DuckDB's default (122,880) holds ~240 MB of raw
#: JSON at 4 × the bench sample, and every commit's checkpoint rewrites (and holds) the table's last, still
#: growing row group: the raw step's commits rewrote one row group ~17 times. DuckDB takes this size only as an
#: ATTACH option, hence the attached catalog below.
ROW_GROUP_ROWS = 16_384
#: the name the warehouse file is attached under; every connection USEs it, so names resolve as before
CATALOG = "karte"

#: resolved path → the open read-write connections into the one DuckDB instance that has the file attached. A
#: file attached by two instances of one process is an error ("unique file handle conflict"), so a second
#: connect() is a cursor of a live one. Weak: the instance closes when its last connection does.
_attached: dict[Path, weakref.WeakSet] = {}
_attached_lock = threading.Lock()


class WarehouseError(RuntimeError):
    """An operational failure opening or writing the warehouse; str() is a one-line message."""


def connect(path: str | os.PathLike, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    path = Path(path)
    if read_only and not path.exists():
        raise WarehouseError(f"warehouse {path} does not exist; run `karte ingest` first")
    if not read_only and str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # ":memory:" (tests, scratch work) is a new empty database each time, as with duckdb.connect
        plain = read_only or str(path) == ":memory:"
        con = duckdb.connect(str(path), read_only=read_only, config=_CONFIG) if plain else _attach(path)
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
        from pipelines.warehouse.tables import create_tables

        create_tables(con)
    return con


def _attach(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-write connection to the warehouse at `path`: the file attached (with ROW_GROUP_ROWS) to an in-memory
    instance and made the default catalog, or another connection into the instance that already has it."""
    key = path.resolve()
    with _attached_lock:
        for live in list(_attached.get(key, ())):
            try:
                con = sibling_cursor(live)  # a closed connection cannot make one; another live one may
            except duckdb.ConnectionException:
                continue
            _attached[key].add(con)
            return con
        con = duckdb.connect(":memory:", config=_CONFIG)
        try:
            con.execute(f"ATTACH '{str(key).replace(chr(39), chr(39) * 2)}' AS {CATALOG} "
                        f"(ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
        except BaseException:
            con.close()
            raise
        con.execute(f"USE {CATALOG}")
        _attached[key] = weakref.WeakSet([con])
        return con


def _set_session(con: duckdb.DuckDBPyConnection) -> None:
    # Instants are stored with their offset; UTC as the session zone keeps derived values machine-independent.
    con.execute("SET TimeZone = 'UTC'")


def sibling_cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Another connection into `con`'s database (con.cursor()), on the same default catalog and session
    settings: its own transactions and temp tables. Close it before `con` (closing `con` closes it). Safe to
    call on another thread while `con` runs a query: it reads nothing through `con`."""
    own = con.cursor()
    # a cursor starts on its instance's default catalog: the in-memory one where connect() attached the file
    if own.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [CATALOG]).fetchone()[0]:
        own.execute(f"USE {CATALOG}")
    _set_session(own)
    return own


@contextlib.contextmanager
def worker_connection(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Another connection to `con`'s database, for a step on another thread: its own transactions and temp
    tables, the same session settings (DuckDB keeps the time zone per connection, the memory cap per database)."""
    own = sibling_cursor(con)
    try:
        yield own
    finally:
        own.close()


def cap_memory(con: duckdb.DuckDBPyConnection, limit: str) -> duckdb.DuckDBPyConnection:
    """Cap DuckDB's buffer pool (it otherwise grows to 80 % of RAM caching what it wrote); ingest runs under
    Settings.ingest_memory_limit so its peak follows the step windows, not the warehouse size."""
    con.execute("SET memory_limit = ?", [limit])
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
