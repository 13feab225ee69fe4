"""Freed memory handed back to the operating system between ingest steps (pipelines/ingest/heap.py)."""

import os
import sys

import duckdb
import pytest

from pipelines.ingest import schedule
from pipelines.ingest.heap import release_free_heap

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
                                reason="malloc_trim is glibc's; elsewhere release_free_heap does nothing")


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@glibc_only
def test_memory_a_step_freed_leaves_the_process():
    # 200 MiB of 2 kB objects (malloc'd, not Python's small-object arenas), then one allocated after them, so
    # the heap's top cannot simply shrink: freeing them leaves the pages resident until they are trimmed
    blocks = [bytes(2048) + bytes([i % 256]) for i in range(100_000)]
    pinned = bytes(4096) + b"."
    del blocks
    before = _rss_mib()
    assert release_free_heap() is True
    assert before - _rss_mib() > 150
    assert pinned.endswith(b".")


def test_without_the_c_library_call_it_reports_that_it_did_nothing(monkeypatch):
    monkeypatch.setattr("pipelines.ingest.heap._malloc_trim", lambda: None)
    assert release_free_heap() is False


@pytest.mark.parametrize("lanes", [1, 2])
def test_the_scheduler_releases_after_every_step_also_a_failed_one(monkeypatch, tmp_path, lanes):
    released: list[str] = []
    current: list[str] = []

    def step(name, fails=False):
        def run(own):
            current.append(name)
            if fails:
                raise RuntimeError("disk full")
        return run

    monkeypatch.setattr(schedule, "release_free_heap", lambda: released.append(current[-1]))
    steps = [("a", step("a")), ("b", step("b")), ("c", step("c", fails=True))]
    with pytest.raises(RuntimeError, match="disk full"):
        schedule.run_steps(duckdb.connect(str(tmp_path / "w.duckdb")), steps, {"b": ("a",), "c": ("b",)},
                           lanes=lanes)
    assert released == ["a", "b", "c"]
