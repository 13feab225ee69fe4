"""Coverage-guided fuzzing (atheris / libFuzzer) of the JSON reader, the registry CSV reader, the CDA parser and
the checkup archive reader, each in a subprocess on a fixed time budget: no crash, no hang, no broken invariant,
no file descriptor left open (tests/security/atheris_harness.py says what each target checks)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is not installed here: coverage-guided fuzzing skipped "
                                      "(the hypothesis fuzzers in test_fuzz.py still run)")

from pipelines.config import PROJECT_ROOT

HARNESS = "tests.security.atheris_harness"
SECONDS_PER_TARGET = 2  # 4 targets: ~15 s of wall time with start-up


def run_target(target: str, corpus: Path, seconds: int) -> tuple[int, float, str]:
    """(inputs executed, seconds fuzzed, libFuzzer's output) for one target, seeded with its valid inputs."""
    done = subprocess.run(
        [sys.executable, "-m", HARNESS, target, str(corpus), f"-max_total_time={seconds}", "-timeout=10",
         "-rss_limit_mb=2048", "-print_final_stats=1", f"-artifact_prefix={corpus.parent}/"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=seconds + 120, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]  # a crash leaves its input as crash-* beside the corpus
    runs = re.search(r"stat::number_of_executed_units: (\d+)", output)
    took = re.search(r"Done \d+ runs in (\d+) second", output)
    assert runs and took, output[-3000:]
    return int(runs.group(1)), float(took.group(1)), output


@pytest.mark.parametrize("target", ["json", "csv", "cda", "archive"])
def test_target_survives_its_time_budget(tmp_path, target):
    runs, seconds, _ = run_target(target, tmp_path / "corpus", SECONDS_PER_TARGET)
    print(f"atheris {target}: {runs} inputs in {seconds:.0f} s")
    assert runs > 50  # it really fuzzed (the seeds alone are 2–4 inputs)
