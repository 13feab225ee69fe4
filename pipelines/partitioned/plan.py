"""The partition plan: which newly landed files form which (arrival day × sender) partition, and which worker
shard runs which partitions."""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from pipelines.ingest.raw_read import unpacked_bytes

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
    size_bytes: int  # the files' text: unpacked size (what a map step holds), the measure of work
    #: each file's bytes, in file_ids order; empty when unknown, and then the partition is never sliced
    file_sizes: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.day}|{self.sender}"

    def slices(self, limit: int) -> list["Partition"]:
        """The partition cut into runs of consecutive files of at most `limit` bytes (a file larger than that
        alone), or whole when it fits or its files' sizes are unknown. Every slice keeps the (day, sender)
        key: the lake layout is unchanged, slices only spread one partition's work over several shards."""
        if self.size_bytes <= limit or not self.file_sizes:
            return [self]
        pieces: list[Partition] = []
        start, total = 0, 0
        for end, size in enumerate(self.file_sizes):
            if end > start and total + size > limit:
                pieces.append(self._files(start, end, total))
                start, total = end, 0
            total += size
        pieces.append(self._files(start, len(self.file_ids), total))
        return pieces

    def _files(self, start: int, end: int, size: int) -> "Partition":
        return Partition(self.day, self.sender, self.file_ids[start:end], size, self.file_sizes[start:end])


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
    def file_sizes(self) -> dict[int, int]:
        """Each file's unpacked bytes, as the plan weighed them (the raw merge cuts its runs by them)."""
        return {f: size for p in self.partitions for f, size in zip(p.file_ids, p.file_sizes, strict=True)}

    @property
    def name(self) -> str:
        return f"shard{self.index:03d}"


def arrival_day(mtime_ns: int) -> str:
    return datetime.fromtimestamp(mtime_ns / 1e9, ARRIVAL_ZONE).date().isoformat()


def pending_partitions(con: duckdb.DuckDBPyConnection, inbox: Path) -> list[Partition]:
    """Landed, not yet parsed files grouped by (arrival day, sender), in key order. A file weighs its unpacked
    size (a .gz's trailer, a ZIP's directory): at the same bytes on disk, the 4 × bench input's shards held
    7,287 to 16,794 records by how many of their files were compressed, and a map process's memory follows
    the text it holds."""
    rows = con.execute(
        """
        SELECT m.file_id, coalesce(m.sender, m.kind), m.path, m.size_bytes, c.mtime_ns
        FROM ops.file_manifest m LEFT JOIN ops.file_sighting_cache c USING (path)
        WHERE NOT m.parsed ORDER BY m.file_id
        """
    ).fetchall()
    groups: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for file_id, sender, path, size, mtime_ns in rows:
        day = arrival_day(mtime_ns) if mtime_ns is not None else "unknown"
        groups.setdefault((day, sender), []).append((file_id, unpacked_bytes(inbox / path, size)))
    return [Partition(day, sender, tuple(f for f, _ in files), sum(s for _, s in files), tuple(s for _, s in files))
            for (day, sender), files in sorted(groups.items())]


def assign_shards(batch_id: int, lake: str, partitions: list[Partition], shards: int) -> list[Shard]:
    """Largest partitions first onto the least loaded shard (bytes as the measure of work); deterministic.
    A partition larger than a shard's even share is first sliced into runs of consecutive files of at most that
    share: a map process holds its whole shard, and one sender's day grows with the input (the 4 × bench
    input's largest is 42 MiB against an even share of 18 MiB; at 16 × one 173 MB shard ran out of the ingest
    cap before the lake's row groups were made small), so unsliced the largest shard followed the input.
    Always at least one shard, empty when nothing is new, so the reduce still closes the run's batch."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, not {shards}")
    share = -(-sum(p.size_bytes for p in partitions) // shards)
    pieces = [piece for part in partitions for piece in part.slices(share)]
    count = max(1, min(shards, len(pieces)))
    load = [0] * count
    members: list[list[Partition]] = [[] for _ in range(count)]
    for part in sorted(pieces, key=lambda p: (-p.size_bytes, p.key, p.file_ids)):
        target = min(range(count), key=lambda i: (load[i], i))
        load[target] += part.size_bytes
        members[target].append(part)
    return [Shard(batch_id, i, tuple(sorted(m, key=lambda p: (p.key, p.file_ids))), lake)
            for i, m in enumerate(members)]
