"""Staging views are compiled once per (view, carry) and reused with any source: the SQL is the one a fresh
compilation gives, the warehouse keeps it for the next process under a key no other compiler shares, and the
column names read from the JSON are the compiler's."""

import duckdb
import pytest

from pipelines.ingest import flatten as flatten_module
from pipelines.ingest.flatten import STAGING_VIEWS, flatten_sql, staging_view, view_column_names
from pipelines.views import compile_view, view_columns
from pipelines.warehouse import connect

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


CONSENT = ('{"resourceType": "Consent", "id": "c-1", "status": "active", "dateTime": "2026-04-01T10:00:00+09:00", '
           '"provision": {"type": "permit"}}')
SOURCE = f"SELECT 7 AS raw_id, '{CONSENT}'::JSON AS resource"


@pytest.fixture
def fresh_process(monkeypatch):
    """As if no view had been compiled in this process yet."""
    monkeypatch.setattr(flatten_module, "_ready", {})
    flatten_module._compiled.cache_clear()
    yield
    flatten_module._compiled.cache_clear()


def test_the_warehouse_keeps_the_compiled_sql_for_the_next_process(tmp_path, fresh_process, monkeypatch):
    con = connect(tmp_path / "w.duckdb")
    first = flatten_module.flatten(con, "consent", SOURCE, ["raw_id"])
    assert first["resource_id"].to_list() == ["c-1"]
    key = flatten_module.cache_key("consent", ("raw_id",))
    before, after = con.execute(f"SELECT before_source, after_source FROM {flatten_module.CACHE_TABLE} "
                                "WHERE key = ?", [key]).fetchone()
    assert f"{before}({SOURCE}){after}" == flatten_sql("consent", SOURCE, ["raw_id"])

    # the next process reads it back instead of compiling
    monkeypatch.setattr(flatten_module, "_ready", {})
    flatten_module._compiled.cache_clear()
    monkeypatch.setattr(flatten_module, "compile_view", lambda *args, **kwargs: pytest.fail("compiled again"))
    assert flatten_module.flatten(con, "consent", SOURCE, ["raw_id"]).equals(first)


def test_sql_held_under_another_key_is_never_used(tmp_path, fresh_process):
    con = connect(tmp_path / "w.duckdb")
    flatten_module.flatten(con, "consent", SOURCE, ["raw_id"])
    # what an older compiler (another key) left behind, however wrong, is not read
    con.execute(f"UPDATE {flatten_module.CACHE_TABLE} SET key = 'older', before_source = 'SELECT 1/0 FROM '")
    flatten_module._ready.clear()
    assert flatten_module.flatten(con, "consent", SOURCE, ["raw_id"])["resource_id"].to_list() == ["c-1"]
    assert flatten_module.cache_key("consent", ("raw_id",)) != flatten_module.cache_key("consent", ("raw_id", "x"))


def test_a_read_only_warehouse_is_only_read(tmp_path, fresh_process):
    path = tmp_path / "w.duckdb"
    connect(path).close()
    con = connect(path, read_only=True)
    assert flatten_module.flatten(con, "consent", SOURCE, ["raw_id"])["resource_id"].to_list() == ["c-1"]
    assert con.execute(f"SELECT count(*) FROM {flatten_module.CACHE_TABLE}").fetchone() == (0,)


def test_a_bare_duckdb_file_gets_no_cache_table(tmp_path, fresh_process):
    con = duckdb.connect(str(tmp_path / "bare.duckdb"))
    assert flatten_module.flatten(con, "consent", SOURCE, ["raw_id"])["resource_id"].to_list() == ["c-1"]
    assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'compiled_view'").fetchone()[0]
