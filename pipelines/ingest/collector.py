"""Python's cyclic garbage collector during a batch run.

An ingest allocates millions of short-lived containers (parsed resources, row tuples, ElementTree nodes) that
reference counting frees on its own; none of them forms a cycle the run depends on collecting. With the
default thresholds (a young collection every 700 allocations, a full one every 100 young ones) the collector
still ran often enough, each full pass walking every object the imports left behind (≈ 120,000 before a run,
more once the fhir.resources models are built), that `perf` put 6 % of a full load's CPU in it
(`gc_collect_main`, `visit_decref`, `visit_reachable`; docs/capacity.md, eleventh session).

During a run the objects that exist at its start are frozen (moved to a generation the collector never walks:
they live as long as the process anyway), and young collections wait for `BATCH_GEN0_THRESHOLD` allocations.
Both are undone when the run ends, so a long-lived process (Dagster's code server, a test session) goes back to
its own settings. Forked workers (the raw step's reading pool) inherit the frozen state, which also keeps the
collector from touching, and so copying, the parent's pages in them.
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: young-generation allocations between collections during a run (Python's default is 700)
BATCH_GEN0_THRESHOLD = 10_000


@contextmanager
def batch_collection(gen0_threshold: int = BATCH_GEN0_THRESHOLD) -> Iterator[None]:
    """Run the body with the process's current objects frozen and young collections rarer; nested uses leave
    the outermost one in charge."""
    if gc.get_freeze_count():  # an enclosing run already froze: unfreezing here would undo its freeze
        yield
        return
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(gen0_threshold, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
