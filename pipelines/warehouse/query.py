"""Ad-hoc read-only SQL (`karte query`). The connection is opened read-only and without access to
files or the network, so a query can neither change the warehouse nor read or write anything else."""

import os

import duckdb

from pipelines.warehouse.connection import WarehouseError, connect


def run_read_only(path: str | os.PathLike, sql: str) -> tuple[list[str], list[tuple]]:
    con = connect(path, read_only=True)
    try:
        # Locks the setting for the session: the query cannot switch file access back on.
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        try:
            result = con.execute(sql)
        except duckdb.Error as exc:
            raise WarehouseError(f"query failed: {str(exc).splitlines()[0]}") from exc
        columns = [d[0] for d in result.description] if result.description else []
        return columns, result.fetchall()
    finally:
        con.close()
