"""Flattening through the staging ViewDefinitions (pipelines/views/staging/*.json), compiled to DuckDB SQL."""

import functools
from collections.abc import Sequence
from pathlib import Path

import duckdb
import polars as pl

from pipelines.views import compile_view, load_view

STAGING_VIEWS = Path(__file__).resolve().parent.parent / "views" / "staging"


@functools.cache
def staging_view(name: str) -> dict:
    return load_view(STAGING_VIEWS / f"{name}.json")


def flatten_sql(name: str, source_sql: str, carry: Sequence[str]) -> str:
    return compile_view(staging_view(name), f"({source_sql})", carry=tuple(carry))


def flatten(con: duckdb.DuckDBPyConnection, name: str, source_sql: str, carry: Sequence[str]) -> pl.DataFrame:
    """Rows of view `name` over `source_sql` (a query with a `resource` JSON column), as polars."""
    return con.sql(flatten_sql(name, source_sql, carry)).pl()
