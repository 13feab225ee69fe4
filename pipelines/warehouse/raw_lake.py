"""raw.resource: the verbatim records, kept as Parquet files beside the warehouse instead of in a DuckDB table.

Grain: one row per input record (a bundle entry, an NDJSON resource, a registry CSV row or a 特定健診 document),
`raw_id` unique and dense, in `<warehouse>.raw/r<first raw id>-<random>.parquet` files, each holding one write
(a raw step group, a merge run) in raw id order. The raw step numbers each group on from `last_raw_id` inside
its transaction (one writer), so ids are unique by construction; `resource` is the JSON text the raw step
serialised (VARCHAR: DuckDB's JSON functions read it as they read JSON). raw.resource_file lists the committed
files; raw.resource is a view over exactly those files, so every reader (staging, views, checks, ad-hoc SQL)
reads it as it read the table.

Why not a table: DuckDB rewrites a table's last, still-growing row group whole at every checkpoint, and this is
by far the widest table (≈ 1.8 kB of JSON a row). At 4 × the bench sample the raw step's checkpoints held 183 MiB
of overflow strings and 179 MiB of table data in the process, the single largest demand of the whole load, and
it grew with the input. A Parquet file is written once, its size set by the group, and never rewritten
(docs/capacity_history.md, twelfth session).

Transactions: a file is written under a temporary name and renamed before the transaction that lists it commits;
the view is replaced in that same transaction, so readers see a file once it is committed. A rolled-back or
crashed write leaves a file nothing lists: it is never read, and `remove_unlisted` (the raw step, before it
writes) deletes it. The raw step also `compact`s the lake once it lists more than MAX_FILES files.

Paths: files are listed, and the view names them, by absolute path (DuckDB resolves a relative path against the
process's working directory, not the database file). A warehouse moved together with its `.raw` folder is
re-pointed by its next writable connect (until then reads of raw.resource fail on the missing file; the reports
never read it). A copy of the `.duckdb` file alone reads the original's raw files, and writes its own beside
itself; copy the folder with it for a copy that stands alone.
"""

import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb

from pipelines.views.fhirpath import sql_str

VIEW = "raw.resource"
SUFFIX = ".raw"
#: the view's columns, in order; the files hold exactly these
COLUMNS = (("raw_id", "BIGINT"), ("file_id", "BIGINT"), ("batch_id", "BIGINT"), ("bundle_key", "BIGINT"),
           ("line_no", "INTEGER"), ("entry_index", "INTEGER"), ("full_url", "VARCHAR"),
           ("resource_type", "VARCHAR"), ("resource", "VARCHAR"))
#: columns every row has (a table's NOT NULL; checked on each file before it is listed)
NOT_NULL = ("raw_id", "file_id", "batch_id", "line_no")
#: rows per Parquet row group, DuckDB's smallest: a reader decompresses the `resource` pages of every row group its
#: filter cannot skip, and the staging steps pick few rows of a type from a bundle key or raw id range (an
#: Organization query on the bench sample: 16.8 ms at 2,048 rows, 32.7 ms at 16,384, 13.2 ms from the old table;
#: the files are as large either way). It also bounds what the writer holds: 2,048 特定健診 documents at their
#: 15–60 kB each are 30–120 MB.
ROW_GROUP_ROWS = 2_048
#: more listed files than this and the raw step compacts them: every query of raw.resource opens each listed
#: file's footer, ≈ 26 µs a file (a raw id range query: 0.7 ms over 10 files, 2.7 ms over 100, 26 ms over 1,000),
#: and a staging run makes hundreds of such queries
MAX_FILES = 64
#: a compacted file holds up to this many rows (at the bench sample's ≈ 1.8 kB of JSON and ≈ 0.4 kB of zstd
#: Parquet a row: ≈ 0.9 GB of JSON in a ≈ 0.2 GB file); larger files are left as they are
COMPACT_ROWS = 500_000
#: the codec of a file `append` writes. The run that writes it reads it back at once, every staging step once per
#: window (≈ 30 reads of the `resource` column at 1 × the bench sample, on one DuckDB thread a lane), and lz4
#: decompresses about twice as fast as zstd: the sample's lake read on one thread, Observations 26 against 40 ms,
#: AllergyIntolerances 12 against 25 ms, for 26 against 17 MiB of file. 1 × full load, six interleaved pairs:
#: 3.82–3.90 s against 3.99–4.21 s with zstd (docs/capacity_history.md, seventeenth session).
FRESH_CODEC = "lz4"
#: the codec of a file `compact` (or a rewrite) writes: data a run has staged, read again by ad-hoc SQL and the
#: checks, so kept small
SETTLED_CODEC = "zstd"


def lake_dir(con: duckdb.DuckDBPyConnection) -> Path:
    """`<warehouse file>.raw`; for an in-memory warehouse a temporary folder, named in the database itself (each
    in-memory database is its own)."""
    (path,) = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    if path and path != ":memory:":
        return Path(path).resolve().with_name(Path(path).name + SUFFIX)
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute("CREATE TABLE IF NOT EXISTS raw.memory_lake AS SELECT ? AS path",
                [tempfile.mkdtemp(prefix="karte-raw-")])
    return Path(con.execute("SELECT path FROM raw.memory_lake").fetchone()[0])


def listed_files(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The committed files' paths, in raw id order."""
    return [path for (path,) in con.execute("SELECT path FROM raw.resource_file ORDER BY first_raw_id, path")
            .fetchall()]


def last_raw_id(con: duckdb.DuckDBPyConnection) -> int:
    """The largest raw id written (0 for none): from the file list, without reading a file."""
    return con.execute("SELECT coalesce(max(last_raw_id), 0) FROM raw.resource_file").fetchone()[0]


def refresh_view(con: duckdb.DuckDBPyConnection) -> None:
    """raw.resource: a view over exactly the listed files."""
    files = listed_files(con)
    if files:
        listing = ", ".join(sql_str(path) for path in files)
        body = (f"SELECT {', '.join(name for name, _ in COLUMNS)} "
                f"FROM read_parquet([{listing}], hive_partitioning = false)")
    else:
        body = "SELECT " + ", ".join(f"NULL::{kind} AS {name}" for name, kind in COLUMNS) + " LIMIT 0"
    con.execute(f"CREATE OR REPLACE VIEW {VIEW} AS {body}")


def append(con: duckdb.DuckDBPyConnection, query: str, params: list | None = None) -> int:
    """Write the rows of `query` (raw.resource's columns, by name; in raw id order) as a new file and list it;
    returns the rows written. Inside a transaction, the file is listed with whatever else it writes; outside
    one, in a transaction of its own."""
    with _within_transaction(con):
        written = _write(con, query, params, FRESH_CODEC)
        _relist(con, [], written)
    return written[-1] if written else 0


def delete_where(con: duckdb.DuckDBPyConnection, condition: str, params: list | None = None) -> int:
    """Remove the rows matching `condition` (SQL over raw.resource's columns): each file holding any is replaced
    by a file of its other rows. Returns the rows removed."""
    with _within_transaction(con):
        return _delete_where(con, condition, params)


def _delete_where(con: duckdb.DuckDBPyConnection, condition: str, params: list | None) -> int:
    removed = 0
    for path in listed_files(con):
        source = f"read_parquet({sql_str(path)}, hive_partitioning = false)"
        matched = con.execute(f"SELECT count(*) FROM {source} WHERE {condition}", params or []).fetchone()[0]
        if not matched:
            continue
        _relist(con, [path], _write(con, f"SELECT * FROM {source} WHERE NOT ({condition}) ORDER BY raw_id", params,
                                    SETTLED_CODEC))
        removed += matched
    return removed


def _relist(con: duckdb.DuckDBPyConnection, replaced: list[str], written: tuple | None) -> None:
    """The file list without `replaced`, with `written` (from `_write`; None: no rows), and the view over it, in
    the caller's transaction."""
    if replaced:
        con.execute("DELETE FROM raw.resource_file WHERE path IN ?", [replaced])
    if written is not None:
        con.execute("INSERT INTO raw.resource_file VALUES (?, ?, ?, ?)", list(written))
    refresh_view(con)


@contextlib.contextmanager
def _within_transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The caller's transaction if one is open, else one of its own: a file listed without its view replaced (or
    the reverse) would be a view that reads other files than the list says."""
    if _in_transaction(con):  # the caller's commits or rolls back the whole
        yield
        return
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether `con` has an explicit transaction open: outside one, each statement gets a transaction id of its
    own (a failed BEGIN would instead abort the caller's transaction)."""
    (first,), (second,) = (con.execute("SELECT txid_current()").fetchone() for _ in range(2))
    return first == second


def _write(con: duckdb.DuckDBPyConnection, query: str, params: list | None,
           codec: str) -> tuple[str, int, int, int] | None:
    """The query's rows as a file of the lake compressed with `codec` (temporary name, then renamed): (path,
    first id, last id, rows), or None when it has no rows."""
    directory = lake_dir(con)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{uuid.uuid4().hex}.tmp"
    select = ", ".join(f"CAST({name} AS {kind}) AS {name}" for name, kind in COLUMNS)
    try:
        rows = con.execute(f"""COPY (SELECT {select} FROM ({query})) TO {sql_str(temporary.as_posix())}
                               (FORMAT parquet, COMPRESSION {codec}, ROW_GROUP_SIZE {ROW_GROUP_ROWS})""",
                           params or []).fetchone()[0]
        if not rows:
            temporary.unlink(missing_ok=True)
            return None
        nulls = " OR ".join(f"{name} IS NULL" for name in NOT_NULL)
        first, last, missing = con.execute(
            f"SELECT min(raw_id), max(raw_id), count(*) FILTER (WHERE {nulls}) "
            f"FROM read_parquet({sql_str(temporary.as_posix())})").fetchone()
        if missing:
            raise ValueError(f"{missing} of {rows} raw rows lack one of {', '.join(NOT_NULL)} (not written)")
        final = directory / f"r{first:012d}-{uuid.uuid4().hex[:8]}.parquet"
        temporary.rename(final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return final.as_posix(), first, last, rows


def compact(con: duckdb.DuckDBPyConnection, max_files: int | None = None, rows: int | None = None) -> int:
    """With more than `max_files` (default MAX_FILES) listed, rewrite each run of consecutive files that together
    hold at most `rows` (default COMPACT_ROWS) as one file, streamed in list order (raw id order: no sort), a
    transaction a run; the replaced files are deleted after. Only for the warehouse's writer, between writes.
    Returns how many files fewer are listed."""
    max_files, rows = max_files or MAX_FILES, rows or COMPACT_ROWS
    listed = con.execute("SELECT path, row_count FROM raw.resource_file ORDER BY first_raw_id, path").fetchall()
    if len(listed) <= max_files:
        return 0
    runs, run, size = [], [], 0
    for path, count in listed:
        if run and size + count > rows:
            runs.append(run)
            run, size = [], 0
        run.append(path)
        size += count
    runs.append(run)
    removed = 0
    for run in (r for r in runs if len(r) > 1):
        listing = ", ".join(sql_str(path) for path in run)
        with _within_transaction(con):
            _relist(con, run, _write(con, f"SELECT * FROM read_parquet([{listing}], hive_partitioning = false)", None,
                                     SETTLED_CODEC))
        removed += len(run) - 1
    remove_unlisted(con)
    return removed


def remove_unlisted(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Delete the lake's files no committed row lists (left by a rolled-back or killed write, or replaced by
    `delete_where` or `compact`); returns their names. Only for the warehouse's writer, between writes."""
    directory = lake_dir(con)
    if not directory.is_dir():
        return []
    listed = set(listed_files(con))
    stale = sorted(p for p in directory.iterdir() if p.is_file() and p.as_posix() not in listed)
    for path in stale:
        path.unlink(missing_ok=True)
    return [path.name for path in stale]


def ensure_raw_lake(con: duckdb.DuckDBPyConnection) -> None:
    """At a writable connect: a warehouse from before the lake has its raw.resource table moved into it; files
    listed where they no longer are, but present in this warehouse's own folder (the warehouse was moved with
    it), are re-pointed there; the view is made when missing."""
    kind = con.execute("SELECT table_type FROM information_schema.tables WHERE table_catalog = current_database() "
                       "AND table_schema = 'raw' AND table_name = 'resource'").fetchone()
    if kind and kind[0] == "BASE TABLE":
        _move_table_into_lake(con)
        return
    directory = lake_dir(con)
    moved = [(path, (directory / Path(path).name).as_posix()) for path in listed_files(con)
             if not Path(path).exists() and (directory / Path(path).name).exists()]
    for old, new in moved:
        con.execute("UPDATE raw.resource_file SET path = ? WHERE path = ?", [new, old])
    if moved or not kind:
        refresh_view(con)


def _move_table_into_lake(con: duckdb.DuckDBPyConnection) -> None:
    with _within_transaction(con):
        written = _write(con, "SELECT * FROM raw.resource ORDER BY raw_id", None, SETTLED_CODEC)
        con.execute("DROP TABLE raw.resource")
        _relist(con, [], written)
