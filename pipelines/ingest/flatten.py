"""Flattening through the staging ViewDefinitions (pipelines/views/staging/*.json), compiled to DuckDB SQL.

A view is compiled once per (view, carry) and its SQL reused with any source. Compiling walks FHIR's type model
and imports fhir.resources models the first time (~0.3 s in a fresh process, more than an increment's rows
cost), so the SQL is also kept in the warehouse (ops.compiled_view): a later process reads it back. Its key
covers everything the SQL depends on — the view file, the carried columns, the compiler's source and the
fhir.resources / pydantic versions — so an entry is never stale: a changed view or compiler misses and recompiles.
"""

import contextlib
import functools
import hashlib
import importlib.metadata
from collections.abc import Sequence
from pathlib import Path

import duckdb
import orjson
import polars as pl

from pipelines.ingest.tables import table_columns
from pipelines.views import compile_view, load_view
from pipelines.warehouse import sibling_cursor

STAGING_VIEWS = Path(__file__).resolve().parent.parent / "views" / "staging"
#: grain: one row per (view file, carry, compiler) key
CACHE_TABLE = "ops.compiled_view"

#: stands for the source query while a view is compiled once per (view, carry); no view text contains it
_SOURCE = "__karte_flatten_source__"
#: the code a compiled view's SQL depends on besides the view itself
_COMPILER = ("compiler.py", "fhirpath.py", "fhir_model.py")
#: (view, carry) → its SQL split around the source, once this process has compiled or read it
_ready: dict[tuple[str, tuple[str, ...]], tuple[str, str]] = {}


@functools.cache
def staging_view(name: str) -> dict:
    return load_view(STAGING_VIEWS / f"{name}.json")


@functools.cache
def _compiled(name: str, carry: tuple[str, ...]) -> tuple[str, str]:
    """The view's SQL split around its source."""
    before, *after = compile_view(staging_view(name), _SOURCE, carry=carry).split(_SOURCE)
    if len(after) != 1:
        raise AssertionError(f"staging view {name}: the compiled SQL names its source {len(after)} times")
    return before, after[0]


@functools.cache
def _compiler_fingerprint() -> bytes:
    digest = hashlib.sha256(Path(__file__).read_bytes())  # how the SQL is split and held
    for file in _COMPILER:
        digest.update((STAGING_VIEWS.parent / file).read_bytes())
    for package in ("fhir.resources", "pydantic"):
        digest.update(f"{package}=={importlib.metadata.version(package)}".encode())
    return digest.digest()


@functools.cache
def cache_key(name: str, carry: tuple[str, ...]) -> str:
    digest = hashlib.sha256(_compiler_fingerprint())
    digest.update((STAGING_VIEWS / f"{name}.json").read_bytes())
    digest.update(orjson.dumps(carry))
    return digest.hexdigest()


def _compiled_for(con: duckdb.DuckDBPyConnection, name: str, carry: tuple[str, ...]) -> tuple[str, str]:
    """_compiled, read from the warehouse when an earlier process compiled it there, stored there otherwise."""
    if (name, carry) in _ready:
        return _ready[name, carry]
    key = cache_key(name, carry)
    # a warehouse has the table (schema.sql); a bare DuckDB file (some tests) or an older read-only one has none
    cached = bool(table_columns(con, CACHE_TABLE))
    row = con.execute(f"SELECT before_source, after_source FROM {CACHE_TABLE} WHERE key = ?", [key]).fetchone() \
        if cached else None
    if row is None:
        row = _compiled(name, carry)
        if cached and not con.execute("SELECT readonly FROM duckdb_databases() WHERE database_name = "
                                      "current_database()").fetchone()[0]:
            _store(con, key, name, row)
    _ready[name, carry] = tuple(row)
    return _ready[name, carry]


def _store(con: duckdb.DuckDBPyConnection, key: str, name: str, row: tuple[str, str]) -> None:
    """Keep compiled SQL in the warehouse, outside the caller's transaction: a cache entry need not roll back
    with a step, and two steps running at once (pipelines/ingest/schedule.py) may store the same entry, in
    which case the second simply loses."""
    with contextlib.closing(sibling_cursor(con)) as own:
        try:
            own.execute(f"INSERT OR REPLACE INTO {CACHE_TABLE} VALUES (?, ?, ?, ?)", [key, name, *row])
        except duckdb.TransactionException:
            pass


@functools.cache
def view_column_names(name: str) -> tuple[str, ...]:
    """The staging view's output columns in order, read from its JSON: what `view_columns` says without
    compiling the view (a step with nothing to flatten need not pay for the compilation)."""
    def names(selection: dict) -> list[str]:
        found = [column["name"] for column in selection.get("column", [])]
        for nested in selection.get("select", []):
            found += names(nested)
        if selection.get("unionAll"):  # the branches agree on their columns
            found += names(selection["unionAll"][0])
        return found

    return tuple(names({"select": orjson.loads((STAGING_VIEWS / f"{name}.json").read_bytes())["select"]}))


def flatten_sql(name: str, source_sql: str, carry: Sequence[str]) -> str:
    before, after = _compiled(name, tuple(carry))
    return f"{before}({source_sql}){after}"


def flatten(con: duckdb.DuckDBPyConnection, name: str, source_sql: str, carry: Sequence[str]) -> pl.DataFrame:
    """Rows of view `name` over `source_sql` (a query with a `resource` JSON column), as polars."""
    before, after = _compiled_for(con, name, tuple(carry))
    # executed, not con.sql(...).pl(): a relation binds its SQL once to learn its columns and again to run it,
    # and binding a compiled view's nested lambdas costs more than a small window's rows (document_section:
    # 36 ms of 66; an increment's 13 flattens: 0.19-0.27 s -> 0.14-0.19 s)
    return con.execute(f"{before}({source_sql}){after}").pl()
