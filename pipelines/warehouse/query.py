"""Ad-hoc read-only SQL (`karte query`).

Read-only in fact: the connection is opened read-only, without access to files or the network, with its
configuration locked. And consent-keyed: clinical rows are reachable only through the `shared` macros —
a query naming raw, staging, views or a clinical core table is refused before it runs.
"""

import json
import os

import duckdb

from pipelines.consent.read_path import CLINICAL_TABLES
from pipelines.warehouse.connection import WarehouseError, connect

#: schemas whose tables hold clinical content outside the consent filter (raw/staging also raw identifiers)
BLOCKED_SCHEMAS = {"raw", "staging", "views"}
BLOCKED_CORE_TABLES = set(CLINICAL_TABLES) | {"document_section", "document_resource"}
#: table functions a query may call besides the shared.* read path
ALLOWED_TABLE_FUNCTIONS = {"range", "generate_series", "unnest"}


def _walk(node, found: list) -> None:
    if isinstance(node, dict):
        if node.get("type") == "BASE_TABLE":
            found.append(("table", node.get("schema_name") or "", node.get("table_name") or ""))
        elif node.get("type") == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
            function = node["function"]
            found.append(("function", function.get("schema") or "", function.get("function_name") or ""))
        for value in node.values():
            _walk(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)


def refusal(con: duckdb.DuckDBPyConnection, sql: str) -> str | None:
    """Why `sql` may not run through `karte query`, or None."""
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    if tree.get("error"):
        return f"only a single SELECT can run here ({tree.get('error_message', 'not a SELECT')})"
    if len(tree.get("statements", [])) != 1:
        return "run one SELECT at a time"
    refs: list = []
    _walk(tree, refs)
    for kind, schema, name in refs:
        if kind == "table" and (schema in BLOCKED_SCHEMAS or (schema == "core" and name in BLOCKED_CORE_TABLES)):
            return (f"{schema}.{name} holds clinical data outside the consent filter: "
                    f"read it through shared.visible_<table>(viewer, as_of) or shared.patient_<table>(patient_key)")
        if kind == "function" and schema != "shared" and name not in ALLOWED_TABLE_FUNCTIONS:
            return f"table function {name}() is not available in karte query"
    return None


def run_read_only(path: str | os.PathLike, sql: str) -> tuple[list[str], list[tuple]]:
    con = connect(path, read_only=True)
    try:
        # Locks the setting for the session: the query cannot switch file access back on.
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        try:
            reason = refusal(con, sql)
            if reason:
                raise WarehouseError(f"query refused: {reason}")
            result = con.execute(sql)
        except duckdb.Error as exc:
            raise WarehouseError(f"query failed: {str(exc).splitlines()[0]}") from exc
        columns = [d[0] for d in result.description] if result.description else []
        return columns, result.fetchall()
    finally:
        con.close()
