"""The DuckDB warehouse: connection, layout, bookkeeping."""

from pipelines.warehouse.connection import (
    WarehouseError,
    cap_memory,
    connect,
    drop_temp_objects,
    sibling_cursor,
    temp_objects,
    transaction,
)
from pipelines.warehouse.watermark import get_watermark, set_watermark, windows

__all__ = ["WarehouseError", "cap_memory", "connect", "drop_temp_objects", "get_watermark", "set_watermark",
           "sibling_cursor", "temp_objects", "transaction", "windows"]
