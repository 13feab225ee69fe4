"""Running one view ad hoc (``karte view run``): over FHIR resources in a file, or over a warehouse's raw layer,
and writing its rows as JSON, CSV or Parquet. No Dagster, no writes to the warehouse.

Input files: NDJSON with one FHIR resource per line (blank lines skipped, ``.gz`` read transparently), or
one JSON document holding a single resource (such as a pretty-printed IG example). A Bundle is kept and
its entries' resources are added too (recursively), so the same file serves a Bundle view and an
Observation view alike.
"""

from __future__ import annotations

import csv
import gzip
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import duckdb
import orjson
import polars as pl

from .compiler import compile_view, view_columns
from .materialize import source_sql

__all__ = ["FORMATS", "InputError", "read_resources", "view_query", "write_rows"]

FORMATS = ("json", "csv", "parquet")
_BATCH = 10_000


class InputError(ValueError):
    """Unusable input; str() is a one-line message naming the file (and line)."""


def read_resources(path: str | Path) -> list[str]:
    """The JSON text of every resource in ``path`` ('-' = stdin), Bundle entries expanded."""
    shown = "<stdin>" if str(path) == "-" else str(path)
    data = _read_bytes(path, shown)
    whole = _try_json(data)
    if isinstance(whole, dict):  # one (possibly pretty-printed) document
        return list(_expand(whole, shown, None))
    texts: list[str] = []
    for line_no, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"{shown}:{line_no}: not valid JSON ({exc})") from None
        texts.extend(_expand(obj, shown, line_no))
    return texts


def _read_bytes(path: str | Path, shown: str) -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{shown}: no such file")
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError) as exc:
        raise InputError(f"{shown}: cannot read: {exc}") from None


def _try_json(data: bytes) -> object:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _expand(obj: object, shown: str, line_no: int | None) -> Iterator[str]:
    where = f"{shown}:{line_no}" if line_no else shown
    if not isinstance(obj, dict) or not isinstance(obj.get("resourceType"), str):
        raise InputError(f"{where}: not a FHIR resource (a JSON object with a resourceType)")
    yield orjson.dumps(obj).decode("utf-8")
    if obj["resourceType"] == "Bundle":
        for entry in obj.get("entry") or []:
            if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                yield from _expand(entry["resource"], shown, line_no)


@contextmanager
def input_connection(texts: list[str]) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB holding ``texts`` as table ``resources(resource JSON)``."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        frame = pl.DataFrame({"resource": texts}, schema={"resource": pl.String})
        con.register("resource_texts", frame)
        con.execute("CREATE TABLE resources AS SELECT resource::JSON AS resource FROM resource_texts")
        con.unregister("resource_texts")
        yield con
    finally:
        con.close()


def view_query(view: dict, *, warehouse: bool) -> str:
    """The view's SELECT over ``resources`` (input mode) or the warehouse's records that reached core."""
    source = source_sql(view["resource"]) if warehouse else "resources"
    return compile_view(view, source)


def write_rows(con: duckdb.DuckDBPyConnection, view: dict, sql: str, fmt: str, out: Path | None) -> int:
    """Write the rows of ``sql`` in ``fmt`` to ``out`` (stdout when None); returns the row count.

    JSON is one array of row objects (collections as arrays, JSON columns embedded); CSV has a header and
    writes collections and JSON columns as JSON text; Parquet keeps DuckDB's types (needs ``out``).
    """
    columns = view_columns(view)
    if fmt == "parquet":
        assert out is not None
        con.execute(f"COPY ({sql}) TO '{_sql_path(out)}' (FORMAT parquet)")
        return con.execute(f"SELECT count(*) FROM '{_sql_path(out)}'").fetchone()[0]
    with _opened(out) as stream:
        if fmt == "json":
            return _write_json(con, sql, stream)
        return _write_csv(con, sql, [c.name for c in columns], [c.sql_type for c in columns], stream)


def _write_json(con: duckdb.DuckDBPyConnection, sql: str, stream: IO[str]) -> int:
    cursor = con.execute(f"SELECT CAST(to_json(__row) AS VARCHAR) FROM ({sql}) AS __row")
    count = 0
    stream.write("[")
    while batch := cursor.fetchmany(_BATCH):
        for (text,) in batch:
            stream.write(("\n" if count == 0 else ",\n") + text)
            count += 1
    stream.write("\n]\n" if count else "]\n")
    return count


def _write_csv(con, sql: str, names: list[str], types: list[str], stream: IO[str]) -> int:
    # Collections and JSON values as JSON text (unambiguous, parseable); everything else as DuckDB's text.
    items = [
        f'CAST(to_json(__row."{n}") AS VARCHAR)' if t.endswith("[]") or t == "JSON" else f'CAST(__row."{n}" AS VARCHAR)'
        for n, t in zip(names, types)
    ]
    cursor = con.execute(f"SELECT {', '.join(items)} FROM ({sql}) AS __row")
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(names)
    count = 0
    while batch := cursor.fetchmany(_BATCH):
        writer.writerows(batch)
        count += len(batch)
    return count


@contextmanager
def _opened(out: Path | None) -> Iterator[IO[str]]:
    if out is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    with open(out, "w", encoding="utf-8", newline="") as stream:
        yield stream


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
