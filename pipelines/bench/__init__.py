"""`karte bench`: performance measurements, one section per subject, written together to data/reports/bench.json.

Sections: ``views`` (pipelines/bench/views.py — the compiled staging view against hand-written SQL) and
``machine`` (pipelines/bench/report.py — what the numbers were measured on). Other subjects add their own
section under their own key with ``report.write_sections``; writing one section keeps the others in the file.
Every run is also appended to the history beside the report (``report.append_history``): `karte bench --history`.
"""

import json
import os
import resource
import subprocess
import sys

#: prefix of the one stdout line on which a benchmark child process prints its figures (JSON)
FIGURES = "KARTE-BENCH "


def own_peak_rss_kib() -> int:
    """This process's own peak resident memory in KiB: VmHWM, which starts afresh when the process execs.

    Not ru_maxrss: Linux carries a process's high-water mark across exec, so a child started from a parent that
    held gigabytes reported the parent's size as its own. `make bench` runs the views section (≈ 4.4 GiB) before
    the ingest ones, and every ingest child then reported 4,381 MiB, at 1 × and at 4 × alike (ratio 1.00)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):  # no procfs: the best there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_figures(code: str, *args: str, what: str, env: dict | None = None) -> dict:
    """Run `code` (`python -c`) with `args` in a fresh process and return the figures it printed on its FIGURES
    line: whatever else the run prints (warnings, notes) is ignored. A failed child raises RuntimeError naming
    `what` and the child's last error line."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False,
                          env=None if env is None else {**os.environ, **env})
    if done.returncode:
        raise RuntimeError(f"{what} failed: {done.stderr.strip().splitlines()[-1:]}")
    marked = [line for line in done.stdout.splitlines() if line.startswith(FIGURES)]
    if not marked:
        raise RuntimeError(f"{what} printed no figures: {done.stdout[-300:]!r}")
    return json.loads(marked[-1].removeprefix(FIGURES))


#: Observation resources the views benchmark flattens by default (`make bench`).
DEFAULT_RESOURCES = 1_000_000
#: the national scale the 'reports' section times the adoption and audit reports at (`pipelines/bench/scale.py`)
NATIONAL_FACILITIES = 180_000
NATIONAL_ACCESS_EVENTS = 10_000_000
