"""Staging views are compiled once per (view, carry) and reused with any source: the SQL is the one a fresh
compilation gives, and the column names read from the JSON are the compiler's."""

import pytest

from pipelines.ingest.flatten import STAGING_VIEWS, flatten_sql, staging_view, view_column_names
from pipelines.views import compile_view, view_columns

VIEWS = sorted(p.stem for p in STAGING_VIEWS.glob("*.json"))


@pytest.mark.parametrize("name", VIEWS)
def test_cached_compilation_is_a_fresh_one(name):
    for carry in ((), ("raw_id", "bundle_key")):
        for source in ("SELECT raw_id, bundle_key, resource FROM raw.resource WHERE raw_id > 5",
                       "SELECT 1 AS raw_id, 2 AS bundle_key, '{}'::JSON AS resource"):
            assert flatten_sql(name, source, carry) == compile_view(staging_view(name), f"({source})", carry=carry)


@pytest.mark.parametrize("name", VIEWS)
def test_column_names_without_compiling(name):
    assert view_column_names(name) == tuple(c.name for c in view_columns(staging_view(name)))
