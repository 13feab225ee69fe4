"""The DuckDB warehouse: connection, layout, bookkeeping."""

from pipelines.warehouse.connection import WarehouseError, connect, transaction
from pipelines.warehouse.watermark import get_watermark, set_watermark, windows

__all__ = ["WarehouseError", "connect", "get_watermark", "set_watermark", "transaction", "windows"]
