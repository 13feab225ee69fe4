"""The DuckDB warehouse: connection, layout, bookkeeping."""

from pipelines.warehouse.connection import (
    WarehouseError,
    cap_duckdb,
    connect,
    sibling_cursor,
    transaction,
)
from pipelines.warehouse.watermark import get_watermark, set_watermark, windows

__all__ = ["WarehouseError", "cap_duckdb", "connect", "get_watermark", "set_watermark", "sibling_cursor",
           "transaction", "windows"]
