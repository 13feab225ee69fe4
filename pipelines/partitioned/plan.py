"""The partition plan: which newly landed files form which (arrival day × sender) partition, and which worker
shard runs which partitions."""

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import duckdb

#: the arrival day is the Japanese calendar day a file reached the inbox (its mtime), as senders and the
#: service operator count days
ARRIVAL_ZONE = ZoneInfo("Asia/Tokyo")


@dataclass(frozen=True)
class Partition:
    """One (arrival day, sender) partition of a run's new files. `sender` is the 医療機関番号 of the file name,
    or the kind of feed for files that carry none (consent, access, facilities)."""

    day: str
    sender: str
    file_ids: tuple[int, ...]
    size_bytes: int

    @property
    def key(self) -> str:
        return f"{self.day}|{self.sender}"


@dataclass(frozen=True)
class Shard:
    """The partitions one map step handles (one worker process, one scratch DuckDB). Partitions are the unit
    of data layout; shards only batch them so a step's start-up cost is paid a few times, not per sender."""

    batch_id: int
    index: int
    partitions: tuple[Partition, ...]
    lake: str  # the lake folder (pipelines/partitioned/lake.py) its map steps write to

    @property
    def file_ids(self) -> list[int]:
        return sorted(f for p in self.partitions for f in p.file_ids)

    @property
    def name(self) -> str:
        return f"shard{self.index:03d}"


def arrival_day(mtime_ns: int) -> str:
    return datetime.fromtimestamp(mtime_ns / 1e9, ARRIVAL_ZONE).date().isoformat()


def pending_partitions(con: duckdb.DuckDBPyConnection) -> list[Partition]:
    """Landed, not yet parsed files grouped by (arrival day, sender), in key order."""
    rows = con.execute(
        """
        SELECT m.file_id, coalesce(m.sender, m.kind), m.size_bytes, c.mtime_ns
        FROM ops.file_manifest m LEFT JOIN ops.file_sighting_cache c USING (path)
        WHERE NOT m.parsed ORDER BY m.file_id
        """
    ).fetchall()
    groups: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for file_id, sender, size, mtime_ns in rows:
        day = arrival_day(mtime_ns) if mtime_ns is not None else "unknown"
        groups.setdefault((day, sender), []).append((file_id, size))
    return [Partition(day, sender, tuple(f for f, _ in files), sum(s for _, s in files))
            for (day, sender), files in sorted(groups.items())]


def assign_shards(batch_id: int, lake: str, partitions: list[Partition], shards: int) -> list[Shard]:
    """Largest partitions first onto the least loaded shard (bytes as the measure of work); deterministic.
    Always at least one shard, empty when nothing is new, so the reduce still closes the run's batch."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, not {shards}")
    count = max(1, min(shards, len(partitions)))
    load = [0] * count
    members: list[list[Partition]] = [[] for _ in range(count)]
    for part in sorted(partitions, key=lambda p: (-p.size_bytes, p.key)):
        target = min(range(count), key=lambda i: (load[i], i))
        load[target] += part.size_bytes
        members[target].append(part)
    return [Shard(batch_id, i, tuple(sorted(m, key=lambda p: p.key)), lake) for i, m in enumerate(members)]
