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
    """Chain the rows the running upsert just inserted (its `winner` temp table); returns how many.

    Call inside the transaction of the insert, so rows and their chain commit together. Only the batch's own
    rows are chained — a row slipped in by hand stays unchained and the check names it — except on the first
    run after the chain columns were added, which chains every row already there (in raw_id order).
    Works in chunks of BATCH_ROWS (hash, fold, UPDATE): one UPDATE joining millions of rows would need
    gigabytes, chunked ones stay within DuckDB's memory limit.
    """
    head_seq, head_hash = chain_head(con)
    scope = "" if head_seq == 0 else "AND raw_id IN (SELECT raw_id FROM winner)"
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
class ChainVerdict:
    intact: bool
    rows: int
    head_seq: int  # as recorded in ops.access_chain_head
    head_hash: str
    first_bad_seq: int | None = None
    first_bad_access_id: str | None = None
    problem: str | None = None

    def message(self) -> str:
        if self.intact:
            return f"hash chain intact: {self.rows} rows, head chain_seq {self.head_seq} {self.head_hash[:16]}…"
        where = f"chain_seq {self.first_bad_seq}" if self.first_bad_seq is not None else "a row outside the chain"
        who = f" (access_id {self.first_bad_access_id})" if self.first_bad_access_id else ""
        return f"hash chain broken at {where}{who}: {self.problem}"


def verify_chain(con: duckdb.DuckDBPyConnection) -> ChainVerdict:
    """Recompute every content hash and the chain; the first row that does not follow is named."""
    head_seq, head_hash = chain_head(con)
    bad = _first_chain_break(con)
    rows = con.execute("SELECT count(*) FROM core.access_event").fetchone()[0]
    if bad is None:
        unchained = con.execute("SELECT access_id FROM core.access_event WHERE chain_seq IS NULL "
                                "ORDER BY raw_id LIMIT 1").fetchone()
        if unchained:
            bad = (None, unchained[0], "row has no chain_seq: it was inserted outside the ingest")
    if bad is None:
        last = con.execute("SELECT max(chain_seq), arg_max(row_hash, chain_seq) FROM core.access_event").fetchone()
        last_seq, last_hash = (last[0] or 0), (last[1] or GENESIS)
        if last_seq < head_seq:
            problem = f"rows chain_seq {last_seq + 1}…{head_seq} are missing (deleted): the head records {head_seq}"
            bad = (last_seq + 1, None, problem)
        elif (last_seq, last_hash) != (head_seq, head_hash):
            problem = f"the last row (chain_seq {last_seq}) does not match the recorded head (chain_seq {head_seq})"
            bad = (last_seq, None, problem)
    if bad is None:  # the whole chain and its head removed: ops.record_outcome still lists every loaded row
        lost = _lost_rows(con)
        if len(lost):
            problem = f"{len(lost)} rows recorded as loaded (ops.record_outcome) are missing, the first raw_id {lost.min()}"
            bad = (None, None, problem)
    if bad is None:
        return ChainVerdict(True, rows, head_seq, head_hash)
    seq, access_id, problem = bad
    return ChainVerdict(False, rows, head_seq, head_hash, seq, access_id, problem)


def _lost_rows(con: duckdb.DuckDBPyConnection) -> np.ndarray:
    """raw_ids ops.record_outcome lists as loaded into core.access_event that the table no longer holds. Two
    integer columns compared in numpy (sorting ~20 million integers) instead of an anti-join whose hash table
    holds every access row."""
    loaded = con.execute("SELECT raw_id FROM ops.record_outcome WHERE table_name = 'core.access_event' "
                         "AND outcome = 'loaded'").fetchnumpy()["raw_id"]
    present = con.execute("SELECT raw_id FROM core.access_event").fetchnumpy()["raw_id"]
    return loaded[~np.isin(loaded, present)]


def _first_chain_break(con: duckdb.DuckDBPyConnection) -> tuple[int, str, str] | None:
    """The first row, in chain_seq order, whose sequence number or hash does not follow (None: all follow).

    Each row is checked against the row_hash stored on the row before it, so every link is independent: a batch
    is verified with map() over C functions (hashlib, str) instead of a Python loop, and the content hashes are
    computed by hashlib (SHA-NI where the CPU has it) rather than DuckDB's sha256, ~4x slower per row."""
    # Rows are stored in insertion order, which is chain order unless someone inserted or copied rows by hand:
    # then (and only then) the 10 million rows are sorted — a sort carrying their canonical text costs gigabytes.
    stored_seqs = con.execute("SELECT chain_seq FROM core.access_event WHERE chain_seq IS NOT NULL").fetchnumpy()
    in_order = bool(np.all(np.diff(stored_seqs["chain_seq"]) > 0))
    reader = con.execute(f"""
        SELECT a.chain_seq, a.raw_id, a.row_hash, encode(CAST({canonical_sql()} AS VARCHAR)) AS canonical
        FROM core.access_event a WHERE a.chain_seq IS NOT NULL
        {"" if in_order else "ORDER BY a.chain_seq, a.raw_id"}""").to_arrow_reader(BATCH_ROWS)
    expected, previous = 1, GENESIS
    for batch in reader:
        seqs = batch.column("chain_seq").to_numpy()
        breaks = np.flatnonzero(seqs != np.arange(expected, expected + len(seqs)))
        n = int(breaks[0]) if len(breaks) else len(seqs)  # the rows before the first sequence break
        stored = batch.column("row_hash").slice(0, n).to_pylist()
        contents = map(_HEX, map(hashlib.sha256, batch.column("canonical").slice(0, n).to_pylist()))
        links = map(str.encode, map(operator.add, [previous, *stored[:-1]], contents))
        follows = list(map(operator.eq, map(_HEX, map(hashlib.sha256, links)), stored))
        if False in follows:
            i = follows.index(False)
            return int(seqs[i]), _access_id(con, batch, i), "the row's content or row_hash was changed after it was chained"
        if n < len(seqs):
            seq, expected = int(seqs[n]), expected + n
            problem = (f"chain_seq {seq} appears again (a copied row)" if seq < expected else
                       f"rows chain_seq {expected}…{seq - 1} are missing (deleted)")
            return seq, _access_id(con, batch, n), problem
        if n:
            previous, expected = stored[-1], expected + n
    return None


def _access_id(con: duckdb.DuckDBPyConnection, batch, i: int) -> str:
    raw_id = batch.column("raw_id")[i].as_py()
    return con.execute("SELECT access_id FROM core.access_event WHERE raw_id = ?", [raw_id]).fetchone()[0]
