"""Dagster resources: where the warehouse, inbox and reports live (defaults from pipelines.config)."""

import os
from contextlib import AbstractContextManager

import dagster as dg
import duckdb

from pipelines.config import Settings, load_settings
from pipelines.ingest.run import ingest_connection
from pipelines.warehouse import connect


class KarteWarehouse(dg.ConfigurableResource):
    """The DuckDB warehouse and the folders around it. Empty strings mean 'use the environment defaults'."""

    warehouse: str = ""
    inbox: str = ""
    reports: str = ""
    archive: str = ""

    def settings(self) -> Settings:
        return load_settings(warehouse=self.warehouse or None, inbox=self.inbox or None, reports=self.reports or None,
                             archive=self.archive or None)

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        os.umask(0o077)  # what the run creates (warehouse, reports) is owner-only, as from the CLI
        return connect(self.settings().warehouse, read_only=read_only)

    def ingest_connection(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A write connection for an ingest step, closed after it (pipelines.ingest.run.ingest_connection)."""
        os.umask(0o077)
        return ingest_connection(self.settings())
