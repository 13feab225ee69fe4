"""Process-wide settings the package makes on import."""

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(("operator", "expected"), [(None, "1"), ("4", "4")])
def test_numpy_linear_algebra_runs_on_one_thread_unless_the_operator_says_otherwise(operator, expected):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if operator:
        env["OPENBLAS_NUM_THREADS"] = operator
    out = subprocess.run([sys.executable, "-c", "import pipelines, os, numpy; print(os.environ['OPENBLAS_NUM_THREADS'])"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


@pytest.mark.parametrize(("operator", "expected"), [(None, "system"), ("jemalloc", "jemalloc")])
def test_pyarrow_allocates_from_the_system_heap_the_ingest_steps_trim(operator, expected):
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if operator:
        env["ARROW_DEFAULT_MEMORY_POOL"] = operator
    code = "import pipelines, pyarrow; print(pyarrow.default_memory_pool().backend_name)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


@pytest.mark.parametrize(("operator", "expected"), [(None, "dirty_decay_ms:0,muzzy_decay_ms:0"),
                                                    ("narenas:2", "narenas:2")])
def test_polars_jemalloc_returns_freed_pages_without_delay_unless_the_operator_configures_it(operator, expected):
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    if operator:
        env["_RJEM_MALLOC_CONF"] = operator
    code = "import pipelines, os, polars; print(os.environ['_RJEM_MALLOC_CONF'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    # polars puts its own defaults first and what it finds after them; for jemalloc the last value of an option wins
    assert out.stdout.strip().endswith("," + expected)
