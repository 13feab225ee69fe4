"""Sharing the partitioned run through DuckLake (DuckDB 1.5 + the offline `duckdb-extension-ducklake` wheel):
one catalog other engines and readers attach to, with a snapshot per publish.

- staging: the Parquet files the staging map steps wrote (global ids, one file per shard × partition) are
  registered in place with `ducklake_add_data_files` — no copy; the lake folder must be kept;
- core: latest-wins tables, so each publish replaces their content in one DuckLake transaction (readers see
  the previous snapshot until it commits, and can time-travel to it).

A DuckDB-file catalog takes one writing process at a time, so the map steps do not write into it concurrently:
the reduce (already the single writer) publishes. Several concurrent writers need a Postgres catalog
(docs/scale_out.md)."""

import glob
import os
from pathlib import Path

import duckdb
import duckdb_extension_ducklake

from pipelines.partitioned.lake import Columns, parquet_files, phase_dir, table_columns
from pipelines.views.fhirpath import sql_str
from pipelines.warehouse import transaction


def _extension_path() -> str:
    found = glob.glob(os.path.join(os.path.dirname(duckdb_extension_ducklake.__file__),
                                   "extensions", "*", "ducklake.duckdb_extension"))
    if not found:
        raise RuntimeError("the DuckLake extension is not in the duckdb-extension-ducklake wheel; reinstall it")
    return found[0]


def attach_catalog(con: duckdb.DuckDBPyConnection, catalog: Path, data_path: Path, alias: str = "lake") -> None:
    """Attach the DuckLake catalog (created on first use) to `con` as `alias`."""
    catalog.parent.mkdir(parents=True, exist_ok=True)
    data_path.mkdir(parents=True, exist_ok=True)
    con.execute(f"LOAD {sql_str(_extension_path())}")
    con.execute(f"ATTACH {sql_str('ducklake:' + catalog.as_posix())} AS {alias} "
                f"(DATA_PATH {sql_str(data_path.as_posix() + '/')})")


def _create(con: duckdb.DuckDBPyConnection, table: str, columns: Columns) -> None:
    schema, _ = table.split(".")
    con.execute(f"CREATE SCHEMA IF NOT EXISTS lake.{schema}")
    body = ", ".join(f'"{name}" {dtype}' for name, dtype in columns)
    con.execute(f"CREATE TABLE IF NOT EXISTS lake.{table} ({body})")


def publish(con: duckdb.DuckDBPyConnection, lake: Path, batch_id: int, staging_schemas: dict[str, Columns],
            catalog: Path, data_path: Path) -> None:
    """From the warehouse connection `con`: register this batch's staging Parquet and refresh core in the
    DuckLake catalog, as one snapshot. Idempotent, so a re-executed merge publishes again safely: a file
    already registered is not added twice, and core is replaced whole."""
    dest = phase_dir(lake, batch_id, "staging")
    attach_catalog(con, catalog, data_path)
    try:
        core = [t for (t,) in con.execute(
            "SELECT 'core.' || table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'core' ORDER BY 1").fetchall()]
        with transaction(con):
            for table, columns in sorted(staging_schemas.items()):
                if not table.startswith("staging."):
                    continue
                _create(con, table, columns)
                schema, name = table.split(".")
                registered = {row[0] for row in con.execute(
                    "SELECT data_file FROM ducklake_list_files('lake', ?, schema => ?)", [name, schema]).fetchall()}
                for path in parquet_files(dest, table):
                    if path not in registered:
                        con.execute("CALL ducklake_add_data_files('lake', ?, ?, schema => ?)", [name, path, schema])
            for table in core:
                _create(con, table, table_columns(con, table))
                con.execute(f"DELETE FROM lake.{table}")
                con.execute(f"INSERT INTO lake.{table} SELECT * FROM {table}")
    finally:
        con.execute("DETACH lake")
