"""Karte: Dagster wiring and the pure domain library it runs."""

import os

# numpy comes in with pandera and pandas, never for linear algebra here; its OpenBLAS otherwise starts a thread
# per core that spins on import: 0.1 CPU-second a process on the 2-core machine (`import numpy`: 0.16 against
# 0.06 CPU-s), taken from the run it starts (the CLI, every Dagster step process). Set before anything imports
# numpy; an operator's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Freed memory goes back to the operating system instead of waiting for reuse (pipelines/ingest/heap.py): pyarrow
# on the system allocator, which the ingest steps trim, rather than its own mimalloc pool; polars' jemalloc (it
# appends this to its own defaults, 500 ms and 1 s) without the decay delay. Together with the trim, 4 × the
# bench sample peaked at 794–832 MiB against 980–1,038 MiB (docs/capacity_history.md, twelfth session). Both are
# read when the library is imported, so they are set here, before anything imports it; an operator's own setting
# wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")
