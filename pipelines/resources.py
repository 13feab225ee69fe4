"""Dagster resources: where the warehouse, inbox and reports live (defaults from pipelines.config)."""

import os

import dagster as dg
import duckdb

from pipelines.config import Settings, load_settings
from pipelines.warehouse import cap_memory, connect


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

    def connect_for_ingest(self) -> duckdb.DuckDBPyConnection:
        """A write connection whose DuckDB memory is capped for the ingest steps (Settings.ingest_memory_limit)."""
        return cap_memory(self.connect(), self.settings().ingest_memory_limit)
