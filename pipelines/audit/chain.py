"""Tamper evidence for the access log: core.access_event is an append-only hash chain.

Each row gets `chain_seq` (1, 2, … in insertion order) and
    row_hash = sha256(row_hash of the previous row || content_hash),  content_hash = sha256(canonical text)
as lowercase hex text (the first row's predecessor is 64 zeros). The canonical text is a JSON array of the
content columns in CONTENT_COLUMNS order, the instant as epoch microseconds (independent of the session time
zone). Chaining computes content hashes set-based in DuckDB and folds the chain in Python (hashlib: about
0.6 s per million rows); verifying checks each link against the stored hash before it, all in hashlib. The newest (chain_seq, row_hash) is kept in ops.access_chain_head, so deleting the last
rows is detected too; every check also reports the head, which the Dagster run log keeps outside the warehouse.

Editing a row changes its content hash; deleting one breaks the sequence and the next row's hash; a row inserted
by hand has no chain_seq. Re-computing the whole suffix and the head would hide an edit from this check alone —
which is why the head is also published with every check result.
"""

import hashlib
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa

GENESIS = "0" * 64
#: the row content the chain protects, in canonical order (changing it means a new chain version)
CONTENT_COLUMNS = ("access_id", "patient_key", "viewer", "staff_id", "staff_role", "recorded", "purpose", "action",
                   "outcome", "kinds", "resource_refs", "raw_id")
BATCH_ROWS = 200_000
_HEX = operator.methodcaller("hexdigest")


def canonical_sql(alias: str = "a") -> str:
    """SQL for the canonical text of a core.access_event row."""
    parts = [f"epoch_us({alias}.recorded)" if c == "recorded" else f"{alias}.{c}" for c in CONTENT_COLUMNS]
    return f"json_array({', '.join(parts)})"


def content_hash_sql(alias: str = "a") -> str:
    return f"sha256({canonical_sql(alias)})"


def fold(previous: str, content_hashes: Iterator[str]) -> Iterator[str]:
    """The row hashes that follow `previous` for the given content hashes, in order."""
    for content in content_hashes:
        previous = hashlib.sha256((previous + content).encode("ascii")).hexdigest()
        yield previous


def chain_head(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    row = con.execute("SELECT chain_seq, row_hash FROM ops.access_chain_head").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


def chain_new_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Chain the rows the running upsert just inserted (the raw ids of its `winner_key`); returns how many.

    Call inside the transaction of the insert, so rows and their chain commit together. Only the batch's own
    rows are chained — a row slipped in by hand stays unchained and the check names it — except on the first
    run after the chain columns were added, which chains every row already there (in raw_id order).
    Works in chunks of BATCH_ROWS (hash, fold, UPDATE): one UPDATE joining millions of rows would need
    gigabytes, chunked ones stay within DuckDB's memory limit.
    """
    head_seq, head_hash = chain_head(con)
    scope = "" if head_seq == 0 else "AND raw_id IN (SELECT raw_id FROM winner_key)"
    todo = con.execute(f"SELECT raw_id FROM core.access_event WHERE chain_seq IS NULL {scope} ORDER BY raw_id"
                       ).fetchnumpy()["raw_id"]  # 8 bytes a row
    done = 0
    for start in range(0, len(todo), BATCH_ROWS):
        # raw_id bounds let DuckDB skip the other row groups (rows sit in raw_id order)
        lo, hi = int(todo[start]), int(todo[min(start + BATCH_ROWS, len(todo)) - 1])
        chunk = con.execute(f"""
            SELECT a.raw_id, {content_hash_sql()} AS content_hash FROM core.access_event a
            WHERE a.raw_id BETWEEN {lo} AND {hi} AND a.chain_seq IS NULL {scope} ORDER BY a.raw_id""").to_arrow_table()
        hashes = list(fold(head_hash, iter(chunk.column("content_hash").to_pylist())))
        seqs = pa.array(range(head_seq + 1, head_seq + 1 + len(hashes)), pa.int64())
        con.register("_chained", pa.table({"raw_id": chunk.column("raw_id"), "chain_seq": seqs, "row_hash": hashes}))
        try:
            con.execute(f"""UPDATE core.access_event SET chain_seq = c.chain_seq, row_hash = c.row_hash FROM _chained c
                            WHERE access_event.raw_id = c.raw_id AND access_event.raw_id BETWEEN {lo} AND {hi}""")
        finally:
            con.unregister("_chained")
        head_seq, head_hash = head_seq + len(hashes), hashes[-1]
        done += len(hashes)
    if done:
        con.execute("DELETE FROM ops.access_chain_head")
        con.execute("INSERT INTO ops.access_chain_head VALUES (?, ?, now())", [head_seq, head_hash])
    return done


@dataclass(frozen=True)
class Checkpoint:
    """A verified position of the chain: every row up to chain_seq hashed to row_hash at verified_at."""
    chain_seq: int
    row_hash: str
    verified_at: datetime
    full: bool  # this verification re-hashed from the genesis
    last_full_at: datetime | None  # the latest full verification that passed (None: never)


def latest_checkpoint(con: duckdb.DuckDBPyConnection) -> Checkpoint | None:
    """The newest checkpoint (None: never verified, or a warehouse from before checkpoints were kept)."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'ops' "
                       "AND table_name = 'access_chain_checkpoint'").fetchone()[0]:
        return None
    row = con.execute("""
        SELECT chain_seq, row_hash, verified_at, is_full,
               (SELECT max(verified_at) FROM ops.access_chain_checkpoint WHERE is_full)
        FROM ops.access_chain_checkpoint ORDER BY verified_at DESC, chain_seq DESC LIMIT 1""").fetchone()
    return Checkpoint(*row) if row else None


@dataclass(frozen=True)
class ChainVerdict:
    intact: bool
    rows: int
    head_seq: int  # as recorded in ops.access_chain_head
    head_hash: str
    first_bad_seq: int | None = None
    first_bad_access_id: str | None = None
    problem: str | None = None
    #: rows re-hashed this time: those after `since` (None: a full verification from the genesis)
    since: Checkpoint | None = None
    rows_hashed: int = 0
    verified_at: datetime | None = None

    @property
    def full(self) -> bool:
        return self.since is None

    def scope(self) -> str:
        """Which verification this is, for the report's reader."""
        when = f" at {self.verified_at:%Y-%m-%d %H:%M} UTC" if self.verified_at else ""
        if self.full:
            return f"full verification{when}: all {self.rows_hashed} rows re-hashed"
        c = self.since
        last_full = (f"last full verification {c.last_full_at:%Y-%m-%d %H:%M} UTC" if c.last_full_at
                     else "no full verification recorded")
        return (f"incremental verification{when}: {self.rows_hashed} rows after checkpoint chain_seq {c.chain_seq} "
                f"(verified {c.verified_at:%Y-%m-%d %H:%M} UTC) re-hashed, earlier rows checked for deletion, "
                f"copies and insertion only; {last_full}")

    def message(self) -> str:
        if self.intact:
            return (f"hash chain intact: {self.rows} rows, head chain_seq {self.head_seq} {self.head_hash[:16]}… "
                    f"({self.scope()})")
        where = f"chain_seq {self.first_bad_seq}" if self.first_bad_seq is not None else "a row outside the chain"
        who = f" (access_id {self.first_bad_access_id})" if self.first_bad_access_id else ""
        return f"hash chain broken at {where}{who}: {self.problem} ({self.scope()})"


def verify_chain(con: duckdb.DuckDBPyConnection, full: bool = False) -> ChainVerdict:
    """Verify the chain and name the first row that does not follow. Incremental (the default): re-hash the rows
    after the latest checkpoint, check the rest for structure only; `full`: re-hash every row from the genesis.
    Without a checkpoint both are full. Reads only (record_checkpoint writes)."""
    started = _utc_now(con)
    since = None if full else latest_checkpoint(con)
    head_seq, head_hash = chain_head(con)
    bad, hashed = _first_chain_break(con, since)
    rows = con.execute("SELECT count(*) FROM core.access_event").fetchone()[0]
    if bad is None:
        unchained = con.execute("SELECT access_id FROM core.access_event WHERE chain_seq IS NULL "
                                "ORDER BY raw_id LIMIT 1").fetchone()
        if unchained:
            bad = (None, unchained[0], "row has no chain_seq: it was inserted outside the ingest")
    if bad is None:
        last_seq, last_hash = _last_link(con)
        if last_seq < head_seq:
            problem = f"rows chain_seq {last_seq + 1}…{head_seq} are missing (deleted): the head records {head_seq}"
            bad = (last_seq + 1, None, problem)
        elif (last_seq, last_hash) != (head_seq, head_hash):
            problem = f"the last row (chain_seq {last_seq}) does not match the recorded head (chain_seq {head_seq})"
            bad = (last_seq, None, problem)
    if bad is None:  # the whole chain and its head removed: ops.record_outcome still lists every loaded row
        lost = _lost_rows(con, _raw_id_at(con, since.chain_seq) if since else 0)
        if len(lost):
            problem = f"{len(lost)} rows recorded as loaded (ops.record_outcome) are missing, the first raw_id {lost.min()}"
            bad = (None, None, problem)
    if bad is None:
        return ChainVerdict(True, rows, head_seq, head_hash, since=since, rows_hashed=hashed, verified_at=started)
    seq, access_id, problem = bad
    return ChainVerdict(False, rows, head_seq, head_hash, seq, access_id, problem, since=since, rows_hashed=hashed,
                        verified_at=started)


def record_checkpoint(con: duckdb.DuckDBPyConnection, verdict: ChainVerdict) -> bool:
    """Append the head an intact verdict verified as the next checkpoint (a broken chain records none)."""
    if not verdict.intact or verdict.head_seq == 0:
        return False
    con.execute("INSERT INTO ops.access_chain_checkpoint VALUES ($seq, $hash, $at, $full, $hashed)",
                {"seq": verdict.head_seq, "hash": verdict.head_hash, "at": verdict.verified_at,
                 "full": verdict.full, "hashed": verdict.rows_hashed})
    return True


def verify_and_checkpoint(con: duckdb.DuckDBPyConnection, full: bool = False) -> ChainVerdict:
    """verify_chain, then record_checkpoint when intact (a writable connection): what `karte audit verify` and the
    Dagster check run, so the next report re-hashes only what arrived since."""
    verdict = verify_chain(con, full=full)
    record_checkpoint(con, verdict)
    return verdict


def _utc_now(con: duckdb.DuckDBPyConnection) -> datetime:
    return con.execute("SELECT CAST(now() AS TIMESTAMPTZ)").fetchone()[0]


def _last_link(con: duckdb.DuckDBPyConnection) -> tuple[int, str]:
    """(chain_seq, row_hash) of the last chained row; (0, GENESIS) when none."""
    last = con.execute("SELECT max(chain_seq) FROM core.access_event").fetchone()[0]
    if last is None:
        return 0, GENESIS
    return last, con.execute(f"SELECT min(row_hash) FROM core.access_event WHERE chain_seq = {int(last)}").fetchone()[0]


def _raw_id_at(con: duckdb.DuckDBPyConnection, seq: int) -> int:
    return con.execute(f"SELECT coalesce(min(raw_id), 0) FROM core.access_event WHERE chain_seq = {int(seq)}"
                       ).fetchone()[0]


def _lost_rows(con: duckdb.DuckDBPyConnection, above: int = 0) -> np.ndarray:
    """raw_ids above `above` that ops.record_outcome lists as loaded into core.access_event and the table no longer
    holds. Two integer columns compared in numpy (sorting ~20 million integers) instead of an anti-join whose
    hash table holds every access row. An incremental check looks above the checkpoint row's raw_id only: rows are
    chained in raw_id order, so one missing below it leaves a gap in the sequence the check has already found."""
    loaded = con.execute("SELECT raw_id FROM ops.record_outcome WHERE table_name = 'core.access_event' "
                         f"AND outcome = 'loaded' AND raw_id > {int(above)}").fetchnumpy()["raw_id"]
    present = con.execute(f"SELECT raw_id FROM core.access_event WHERE raw_id > {int(above)}").fetchnumpy()["raw_id"]
    return loaded[~np.isin(loaded, present)]


def _first_chain_break(con: duckdb.DuckDBPyConnection, since: Checkpoint | None
                       ) -> tuple[tuple[int, str, str] | None, int]:
    """The first row, in chain_seq order, whose sequence number or hash does not follow (None: all follow), and how
    many rows were re-hashed.

    The sequence (1, 2, … with no gap or repeat) is checked over every row — two integer columns in numpy. Hashes
    are checked from the genesis, or only after `since` (whose row must still hold the hash verified then), each
    row against the row_hash stored on the row before it, so every link is independent: a batch is verified with
    map() over C functions (hashlib, str) instead of a Python loop, and the content hashes are computed by hashlib
    (SHA-NI where the CPU has it) rather than DuckDB's sha256, ~4x slower per row."""
    stored = con.execute("SELECT chain_seq, raw_id FROM core.access_event WHERE chain_seq IS NOT NULL").fetchnumpy()
    seqs, raw_ids = stored["chain_seq"], stored["raw_id"]
    # Rows are stored in insertion order, which is chain order unless someone inserted or copied rows by hand:
    # then (and only then) they are sorted — the integers here, and the re-hashed rows by DuckDB.
    # (DuckDB keeps insertion order only with preserve_insertion_order on; without it, scans of different row
    # groups interleave, so the rows are always sorted)
    in_order = bool(con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
                    and np.all(np.diff(seqs) > 0))
    if not in_order:
        order = np.lexsort((raw_ids, seqs))
        seqs, raw_ids = seqs[order], raw_ids[order]
    breaks = np.flatnonzero(seqs != np.arange(1, len(seqs) + 1))
    good = int(breaks[0]) if len(breaks) else len(seqs)  # rows chain_seq 1…good follow in sequence
    structural = None
    if good < len(seqs):
        seq, expected = int(seqs[good]), good + 1
        problem = (f"chain_seq {seq} appears again (a copied row)" if seq < expected else
                   f"rows chain_seq {expected}…{seq - 1} are missing (deleted)")
        structural = (seq, _access_id_of(con, int(raw_ids[good])), problem)
    after, previous = (since.chain_seq, since.row_hash) if since else (0, GENESIS)
    if structural is None and after > len(seqs):
        problem = (f"rows chain_seq {len(seqs) + 1}…{after} are missing (deleted): the checkpoint of "
                   f"{since.verified_at:%Y-%m-%d %H:%M} UTC verified them")
        structural = (len(seqs) + 1, None, problem)
    if after > good:  # the break lies before the checkpoint: nothing after it can be trusted
        return structural, 0
    if after:
        at_checkpoint = con.execute(f"SELECT row_hash FROM core.access_event WHERE chain_seq = {after}").fetchone()[0]
        if at_checkpoint != previous:
            problem = (f"the row's row_hash is not the one verified at the checkpoint of "
                       f"{since.verified_at:%Y-%m-%d %H:%M} UTC: rows up to it were rewritten since")
            return (after, _access_id_of(con, int(raw_ids[after - 1])), problem), 0
    reader = con.execute(f"""
        SELECT a.chain_seq, a.raw_id, a.row_hash, encode(CAST({canonical_sql()} AS VARCHAR)) AS canonical
        FROM core.access_event a WHERE a.chain_seq > {after} AND a.chain_seq <= {good}
        {"" if in_order else "ORDER BY a.chain_seq, a.raw_id"}""").to_arrow_reader(BATCH_ROWS)
    hashed = 0
    for batch in reader:
        n = min(len(batch), good - after - hashed)  # a copied row shares its chain_seq: only the first is read
        stored_hashes = batch.column("row_hash").slice(0, n).to_pylist()
        contents = map(_HEX, map(hashlib.sha256, batch.column("canonical").slice(0, n).to_pylist()))
        links = map(str.encode, map(operator.add, [previous, *stored_hashes[:-1]], contents))
        follows = list(map(operator.eq, map(_HEX, map(hashlib.sha256, links)), stored_hashes))
        if False in follows:
            i = follows.index(False)
            problem = "the row's content or row_hash was changed after it was chained"
            return (int(batch.column("chain_seq")[i].as_py()), _access_id(con, batch, i), problem), hashed + i + 1
        hashed += n
        if n:
            previous = stored_hashes[-1]
        if hashed >= good - after:
            break
    return structural, hashed


def _access_id_of(con: duckdb.DuckDBPyConnection, raw_id: int) -> str:
    return con.execute(f"SELECT min(access_id) FROM core.access_event WHERE raw_id = {raw_id}").fetchone()[0]


def _access_id(con: duckdb.DuckDBPyConnection, batch, i: int) -> str:
    return _access_id_of(con, int(batch.column("raw_id")[i].as_py()))
