"""Process pools for the CPU-heavy ingest steps (reading raw files, strict structure validation)."""

import multiprocessing
import os
import select
import threading
import time
from concurrent.futures import ProcessPoolExecutor


def die_with_parent() -> None:
    """Pool workers end when the ingest process dies, even by SIGKILL: otherwise they wait on the call queue
    for ever, each holding a few hundred MiB (Linux PR_SET_PDEATHSIG; a no-op elsewhere)."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def exit_with(owner: int) -> None:
    """End this worker as soon as process `owner` ends, whatever its parent. A fork-server worker's parent is
    the server, which a SIGKILLed ingest leaves running (each worker holds the server's keep-alive pipe, and the
    call queue's write end), so PR_SET_PDEATHSIG alone would not fire: a thread waits on the owner instead."""

    def wait_for_owner() -> None:
        try:
            fd = os.pidfd_open(owner)  # Linux ≥ 5.3: readable the moment the owner exits
        except ProcessLookupError:
            os._exit(1)
        except (AttributeError, OSError):
            while _alive(owner):
                time.sleep(0.5)
        else:
            select.select([fd], [], [])
        os._exit(1)

    threading.Thread(target=wait_for_owner, name="exit-with-owner", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_count(requested: int | None = None) -> int:
    return requested or os.cpu_count() or 1


def fresh_process_pool(workers: int, preload: list[str]) -> ProcessPoolExecutor:
    """A pool whose workers start from a small server process that imported only `preload`, not from a fork of
    this one: a forked worker would inherit (and be charged, in its RSS) everything the ingest process holds —
    DuckDB's buffers, polars frames — and a copy of a DuckDB connection it must never touch."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=exit_with,
                               initargs=(os.getpid(),))
