"""Handing freed memory back to the operating system between ingest steps.

Four allocators share an ingest process: glibc's malloc (Python's larger objects, pyarrow once
pipelines/__init__.py points it at the system pool), polars' jemalloc, DuckDB's jemalloc and Python's own arenas.
Each keeps what a step freed for later reuse, so a run's peak RSS was the sum of every step's high-water mark
left standing rather than the largest step: at the end of a 4 × load glibc's arenas held 888 MiB of which
52 MiB were in use (docs/capacity_history.md, twelfth session). glibc gives free pages back only when asked, so the
scheduler asks after every step; the jemalloc settings (pipelines/__init__.py) make the other two give back
as they go.
"""

import ctypes
from functools import cache


@cache
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    try:
        return ctypes.CDLL(None).malloc_trim  # the process's own symbols, the C library's among them
    except (OSError, AttributeError):
        return None


def release_free_heap() -> bool:
    """Return the C heap's free pages to the operating system; whether the C library could. After an ingest step
    it took 0.7 ms (median; at most 2.0 ms) at 1 × the bench sample, 1.6 ms (at most 4.5 ms) at 4 ×."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
