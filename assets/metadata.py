"""Materialisation metadata shared by every layer: row counts and column schemas (shown in the UI)."""

import functools

import dagster as dg
import duckdb
import pandera.polars as pa

from pipelines.ingest.run import step_dependencies
from pipelines.warehouse import raw_lake
from pipelines.warehouse.connection import SCHEMA_SQL
from pipelines.warehouse.tables import CORE_SQL


def contract_schema(model: type[pa.DataFrameModel]) -> dg.TableSchema:
    """Column docs straight from the pandera contract, so the UI and the enforced contract agree."""
    schema = model.to_schema()
    return dg.TableSchema(columns=[
        dg.TableColumn(name, str(col.dtype), description=col.description or "",
                       constraints=dg.TableColumnConstraints(nullable=col.nullable))
        for name, col in schema.columns.items()
    ])


def table_schema(con: duckdb.DuckDBPyConnection, table: str) -> dg.TableSchema:
    schema, name = table.split(".")
    rows = con.execute(
        "SELECT column_name, data_type, is_nullable, coalesce(comment, '') FROM duckdb_columns() "
        "WHERE schema_name = ? AND table_name = ? ORDER BY column_index", [schema, name]).fetchall()
    return dg.TableSchema(columns=[
        dg.TableColumn(c, t, description=d, constraints=dg.TableColumnConstraints(nullable=n))
        for c, t, n, d in rows
    ])


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """A table, or a view standing for one (raw.resource over the raw lake's files)."""
    schema, name = table.split(".")
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
                            "AND table_schema = ? AND table_name = ?", [schema, name]).fetchone()[0])


def table_metadata(con: duckdb.DuckDBPyConnection, table: str, model=None, **extra) -> dict:
    if not table_exists(con, table):
        return {"dagster/row_count": 0, **extra}
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    schema = contract_schema(model) if model is not None else table_schema(con, table)
    return {"dagster/row_count": rows, "dagster/column_schema": schema, "table": table, **extra}


@functools.cache
def _layout() -> duckdb.DuckDBPyConnection:
    """An empty in-memory warehouse: the DDL's column types, available before any run."""
    con = duckdb.connect()
    con.execute(SCHEMA_SQL)
    con.execute(CORE_SQL)
    raw_lake.refresh_view(con)  # raw.resource, with no files yet
    return con


def declared_schema(table: str) -> dict:
    """Definition-time metadata: the column schema of a table declared in the DDL (UI shows it unrun)."""
    return {"dagster/column_schema": table_schema(_layout(), table)}


def step_upstream_keys(step: str) -> list[list[str]]:
    """The asset keys of the ingest steps `step` waits for in `karte ingest` (step names are schema.table, as
    the asset keys are), so the Dagster job and the CLI run the steps in a compatible order."""
    return [upstream.split(".") for upstream in _step_dependencies()[step]]


@functools.cache
def _step_dependencies() -> dict[str, tuple[str, ...]]:
    return step_dependencies()
