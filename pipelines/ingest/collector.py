"""Python's cyclic garbage collector during a batch run.

An ingest allocates millions of short-lived containers (parsed resources, row tuples, ElementTree nodes); each
time their count crosses the collector's thresholds it runs, and its full passes walked every object the imports
left behind as well (≈ 120,000 before a run, more once the fhir.resources models are built). `perf` put 6 % of a
full load's CPU in it (`gc_collect_main`, `visit_decref`, `visit_reachable`; docs/capacity_history.md, eleventh
session).

During a run the objects that exist at its start are frozen: moved to a generation the collector never walks
(they live as long as the process anyway). New objects are collected as before: raising the young threshold as
well (10,000) saved no further CPU in interleaved runs and let the peak rise by up to 70 MiB. The freeze is
undone when the run ends, so a long-lived process (Dagster's code server, a test session) goes back to collecting
everything. Forked workers (the raw step's reading pool) inherit it, which also keeps the collector from touching,
and so copying, the parent's pages in them.
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def batch_collection() -> Iterator[None]:
    """Run the body with the process's current objects frozen; nested uses leave the outermost one in charge."""
    if gc.get_freeze_count():  # an enclosing run already froze: unfreezing here would undo its freeze
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
