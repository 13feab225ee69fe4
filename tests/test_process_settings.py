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
