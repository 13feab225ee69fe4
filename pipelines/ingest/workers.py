"""Process pools for the CPU-heavy ingest steps (reading raw files, strict structure validation)."""

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor


def die_with_parent() -> None:
    """Pool workers end when the ingest process dies, even by SIGKILL: otherwise they wait on the call queue
    for ever, each holding a few hundred MiB (Linux PR_SET_PDEATHSIG; a no-op elsewhere)."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def worker_count(requested: int | None = None) -> int:
    return requested or os.cpu_count() or 1


def process_pool(workers: int, then: Callable[[], object] | None = None) -> ProcessPoolExecutor:
    """Forked workers: they start at once with every module and compiled table of this process. A fork server
    or spawned workers would re-import the caller's main module in each (for a script or the Dagster executor,
    1–3 s per worker on the shared 2-core machine: the raw step ran 1.5–2× slower that way). The workers never
    touch this process's DuckDB connection, and end with it, even on SIGKILL. `then()` runs in each worker as it
    starts (a fork pool starts its workers at the first submit)."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_start_worker, initargs=(then,))


def _start_worker(then: Callable[[], object] | None) -> None:
    die_with_parent()
    if then is not None:
        then()
