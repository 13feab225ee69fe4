"""Running the ingest steps two at a time where the data allows it.

After the raw and structure steps, most of a run is single-threaded Python and small DuckDB statements: on the
bench sample the steps after raw used 1.1 of the 2 cores. Each step still reads from its watermark and commits
with it in one transaction (pipelines/ingest/run.py), so running two independent steps at once changes neither
what a step writes nor what a killed run leaves behind; it only needs to know which steps are independent.

A step runs once every step it depends on (`after`) has committed. Until two steps are ready at once (always,
with one lane), steps run on the calling thread: the raw and structure steps fork worker processes, which must
not happen while another thread holds locks. Each step gets its own DuckDB connection to the same database,
closed after it (temp tables, registered frames and the session time zone are per connection); DuckDB's optimistic
concurrency lets two transactions write different rows of one table (ops.watermark, ops.record_outcome) at once.

The two lanes share DuckDB's memory cap (Settings.ingest_memory_limit). Where a step runs out of it beside
another (measured: 4 × and 16 × the bench sample at a 256 MB cap; the default is now 384 MB), its transaction
rolls back, the other step finishes, and the rest of the run goes on one step at a time, starting with that
step: slower, never a failed run.
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import closing

import duckdb

from pipelines.ingest.heap import release_free_heap
from pipelines.warehouse import sibling_cursor

Step = tuple[str, Callable[[duckdb.DuckDBPyConnection], object]]
log = logging.getLogger(__name__)


class ScheduleError(ValueError):
    """The step graph cannot run: a dependency names no step, or comes later in the serial order."""


def check_order(steps: Sequence[Step], after: Mapping[str, Sequence[str]]) -> None:
    """`steps` in their serial order must already respect `after`, so a one-lane run is the same run."""
    seen: set[str] = set()
    for name, _ in steps:
        missing = [upstream for upstream in after.get(name, ()) if upstream not in seen]
        if missing:
            raise ScheduleError(f"step {name} depends on {', '.join(missing)}, which does not run before it")
        seen.add(name)


def run_steps(con: duckdb.DuckDBPyConnection, steps: Sequence[Step], after: Mapping[str, Sequence[str]],
              lanes: int = 2, on_start: Callable[[str], None] | None = None,
              on_done: Callable[[str, object], None] | None = None) -> None:
    """Run every step once its `after` steps have committed, at most `lanes` at a time. Ready steps start in
    the order of `steps`. The first failure stops new steps from starting; the running ones finish, and the
    failure is raised (every committed step stays committed, as in a serial run)."""
    check_order(steps, after)
    pending = list(steps)
    done: set[str] = set()
    running: dict[Future, str] = {}
    beside: set[Future] = set()  # steps that ran while another did: only they may have run out of memory for it
    pool: ThreadPoolExecutor | None = None

    def ready() -> list[Step]:
        return [s for s in pending if all(upstream in done for upstream in after.get(s[0], ()))]

    def finished(name: str, result: object) -> None:
        done.add(name)
        if on_done:
            on_done(name, result)

    try:
        while pending or running:
            startable = ready()
            if not running and (lanes == 1 or (pool is None and len(startable) == 1)):
                name, step = startable[0]
                pending.remove(startable[0])
                if on_start:
                    on_start(name)
                finished(name, _on_own_connection(con, step))
                continue
            if pool is None:
                pool = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="karte-step")
            for item in startable[:lanes - len(running)]:
                name, step = item
                pending.remove(item)
                if on_start:
                    on_start(name)
                running[pool.submit(_on_own_connection, con, step)] = name
            if len(running) > 1:
                beside.update(running)
            failures, crowded = _collect(wait(running, return_when=FIRST_COMPLETED)[0], running, beside, finished)
            if failures or crowded:
                # the other lane's step commits or rolls back whole before anything else happens
                more_failures, more_crowded = _collect(wait(running)[0], running, beside, finished)
                failures += more_failures
                crowded += more_crowded
            if failures:
                raise failures[0]
            if crowded:
                log.warning("ingest step %s ran out of DuckDB memory beside another step; the run goes on one step "
                            "at a time (raise KARTE_INGEST_MEMORY_LIMIT, or set KARTE_INGEST_LANES=1)",
                            ", ".join(crowded))
                lanes = 1
                pending[:0] = [s for s in steps if s[0] in crowded]
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def _collect(completed, running: dict[Future, str], beside: set[Future],
             finished) -> tuple[list[BaseException], list[str]]:
    """Hand each completed step to `finished`; return (failures, steps that ran out of memory beside another)."""
    failures, crowded = [], []
    for future in completed:
        name = running.pop(future)
        error = future.exception()
        if error is None:
            finished(name, future.result())
        elif isinstance(error, duckdb.OutOfMemoryException) and future in beside:
            crowded.append(name)
        else:
            failures.append(error)
    return failures, crowded


def _on_own_connection(con: duckdb.DuckDBPyConnection, step: Callable[[duckdb.DuckDBPyConnection], object]):
    """The step on a connection of its own, closed after it: closing drops the temp tables and views the step
    made (left on `con` they would hold their rows, an upsert's incoming rows, one per staged record, for the
    rest of the run and beyond). Also on the calling thread: listing and dropping them on `con` cost two catalog
    queries a step (≈ 1.5 ms, 0.74 ms each) against 0.1 ms for a cursor. What the step freed goes back to the
    operating system after it (pipelines/ingest/heap.py), so the next step does not start on top of its peak."""
    try:
        with closing(sibling_cursor(con)) as own:
            return step(own)
    finally:
        release_free_heap()
