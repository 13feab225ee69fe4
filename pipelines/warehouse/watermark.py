"""Per-consumer read positions over append-only id streams (raw_id): what makes every step incremental."""

import duckdb


def get_watermark(con: duckdb.DuckDBPyConnection, consumer: str) -> int:
    row = con.execute("SELECT last_id FROM ops.watermark WHERE consumer = ?", [consumer]).fetchone()
    return row[0] if row else 0


def set_watermark(con: duckdb.DuckDBPyConnection, consumer: str, last_id: int) -> None:
    con.execute(
        "INSERT INTO ops.watermark VALUES (?, ?) ON CONFLICT (consumer) DO UPDATE SET last_id = excluded.last_id",
        [consumer, last_id],
    )
