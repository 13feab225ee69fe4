"""Process-wide settings the package makes on import, before the libraries that read them load."""

import os
import subprocess
import sys

import pytest

# variable → (what the package sets, code printing what the process then uses); an operator's own value wins
# (two options for polars: the code prints the last two)
SETTINGS = {
    # numpy's OpenBLAS would spin a thread per core on import
    "OPENBLAS_NUM_THREADS": ("1", "import pipelines, os, numpy; print(os.environ['OPENBLAS_NUM_THREADS'])"),
    # pyarrow on the system heap, which the ingest steps trim (pipelines/ingest/heap.py)
    "ARROW_DEFAULT_MEMORY_POOL": ("system",
                                  "import pipelines, pyarrow; print(pyarrow.default_memory_pool().backend_name)"),
    # polars' jemalloc returns freed pages without delay; polars puts its own defaults first and what it finds
    # after them, and for jemalloc the last value of an option wins
    "_RJEM_MALLOC_CONF": ("dirty_decay_ms:0,muzzy_decay_ms:0",
                          "import pipelines, os, polars; print(','.join(os.environ['_RJEM_MALLOC_CONF'].split(',')[-2:]))"),
}
OPERATOR_VALUES = {"OPENBLAS_NUM_THREADS": "4", "ARROW_DEFAULT_MEMORY_POOL": "jemalloc",
                   "_RJEM_MALLOC_CONF": "narenas:2,narenas:3"}


def _reported(variable: str, operator: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != variable}
    if operator:
        env[variable] = operator
    return subprocess.run([sys.executable, "-c", SETTINGS[variable][1]], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.parametrize("variable", sorted(SETTINGS))
def test_the_package_sets_it_before_the_library_loads(variable):
    assert _reported(variable, None) == SETTINGS[variable][0]


@pytest.mark.parametrize("variable", sorted(SETTINGS))
def test_an_operators_own_value_wins(variable):
    assert _reported(variable, OPERATOR_VALUES[variable]) == OPERATOR_VALUES[variable]
