"""Watching the SQL an ingest step runs (for tests): a connection that hands each statement to a callback before
running it, on every cursor made from it too, and the scans of a statement's query as DuckDB profiles them."""

import json
import re
from collections.abc import Callable


class Watched:
    """`con`, but `before(con, sql, params)` is called ahead of each statement it runs."""

    def __init__(self, con, before: Callable[[object, str, object], object]):
        self._con, self._before = con, before

    def execute(self, sql, *args):
        self._before(self._con, sql, args[0] if args else None)
        return self._con.execute(sql, *args)

    def cursor(self):
        return Watched(self._con.cursor(), self._before)

    def __getattr__(self, name):
        return getattr(self._con, name)


def query_part(sql: str) -> str:
    """The query of a statement (an INSERT's or CREATE … AS's SELECT, from its first SELECT or WITH)."""
    return sql[re.search(r"\bSELECT\b|\bWITH\b", sql).start():]


def _nodes(plan: object):
    """Every operator of a JSON plan (EXPLAIN gives a list of roots, EXPLAIN ANALYZE one root)."""
    todo = plan if isinstance(plan, list) else [plan]
    while todo:
        node = todo.pop()
        yield node
        todo += node.get("children", [])


def parquet_columns(con, sql: str, params) -> set[str]:
    """The columns the Parquet scans of `sql`'s plan read (EXPLAIN, as JSON: the statement is not run)."""
    explain = "EXPLAIN (FORMAT JSON) " + sql
    plan = (con.execute(explain, params) if params else con.execute(explain)).fetchall()[0][1]
    columns: set[str] = set()
    for node in _nodes(json.loads(plan)):
        info = node.get("extra_info", {})
        if info.get("Function") == "READ_PARQUET":
            projected = info.get("Projections", [])
            columns |= {projected} if isinstance(projected, str) else set(projected)
    return columns


def scans(con, sql: str, params) -> list[tuple[str, int]]:
    """(table or table function, rows passed on) of each scan in the query of `sql`, which is run once for it
    (EXPLAIN ANALYZE, as JSON)."""
    explain = "EXPLAIN (ANALYZE, FORMAT JSON) " + query_part(sql)
    plan = (con.execute(explain, params) if params else con.execute(explain)).fetchall()[0][1]
    found = []
    for node in _nodes(json.loads(plan)):
        info = node.get("extra_info", {})
        if "SCAN" in node.get("operator_name", "") or info.get("Function") == "READ_PARQUET":
            table = str(info.get("Table") or info.get("Function") or node["operator_name"])
            if table.count(".") == 2:  # database.schema.table: the database is the warehouse file's name
                table = table.split(".", 1)[1]
            found.append((table, node["operator_cardinality"]))
    return found
