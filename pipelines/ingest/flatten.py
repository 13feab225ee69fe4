"""Flattening through the staging ViewDefinitions (pipelines/views/staging/*.json), compiled to DuckDB SQL."""

import functools
from collections.abc import Sequence
from pathlib import Path

import duckdb
import orjson
import polars as pl

from pipelines.views import compile_view, load_view

STAGING_VIEWS = Path(__file__).resolve().parent.parent / "views" / "staging"

#: stands for the source query while a view is compiled once per (view, carry); no view text contains it
_SOURCE = "__karte_flatten_source__"


@functools.cache
def staging_view(name: str) -> dict:
    return load_view(STAGING_VIEWS / f"{name}.json")


@functools.cache
def _compiled(name: str, carry: tuple[str, ...]) -> tuple[str, str]:
    """The view's SQL split around its source. Compiling walks the view and FHIR's type model (milliseconds
    per view, and it imports fhir.resources models the first time); every window of every step reuses it."""
    before, *after = compile_view(staging_view(name), _SOURCE, carry=carry).split(_SOURCE)
    if len(after) != 1:
        raise AssertionError(f"staging view {name}: the compiled SQL names its source {len(after)} times")
    return before, after[0]


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
    return con.sql(flatten_sql(name, source_sql, carry)).pl()
