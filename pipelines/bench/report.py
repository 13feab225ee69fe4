"""The benchmark report file: sections merged by key, plus a description of the machine; and the run history
beside it (one JSON line per `karte bench` run), because the report keeps only each section's latest figures
and a figure means little without the ones before it on the same machine."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb

#: the run history's file name, beside the report
HISTORY_NAME = "bench_history.jsonl"


def machine_info() -> dict:
    """What the numbers depend on: cores, memory, versions."""
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": sys.version.split()[0],
        "duckdb": duckdb.__version__,
    }


def write_sections(path: str | Path, sections: dict[str, dict]) -> Path:
    """Replace ``sections`` in the JSON report at ``path``, keeping every other section already there."""
    path = Path(path)
    report: dict = {}
    if path.exists():
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            report = {}  # an unreadable old report is replaced, not merged
        if not isinstance(report, dict):
            report = {}
    report.update(sections)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)  # readers never see a half-written report
    return path


def history_path(report: str | Path) -> Path:
    return Path(report).with_name(HISTORY_NAME)


def append_history(report: str | Path, sections: dict[str, dict]) -> Path:
    """Add one line for this run to the history beside `report`: when, on which source revision, and every
    section it measured (`machine` included). Appending is all it does, so runs of different sections
    interleave and none is lost."""
    path = history_path(report)
    entry = {"measured_at": sections.get("machine", {}).get("measured_at"), "revision": source_revision(),
             "sections": sections}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as history:
        history.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return path


def read_history(report: str | Path, last: int | None = None) -> tuple[list[dict], int]:
    """(the last `last` runs of the history beside `report`, oldest first; how many lines could not be read).
    A line cut short by a crash or edited by hand is counted and skipped, not fatal."""
    path = history_path(report)
    if not path.exists():
        return [], 0
    runs, unreadable = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            unreadable += 1
            continue
        if isinstance(entry, dict) and isinstance(entry.get("sections"), dict):
            runs.append(entry)
        else:
            unreadable += 1
    return (runs[-last:] if last else runs), unreadable


def source_revision() -> str | None:
    """The git commit of the code being measured ("+changes" when tracked files differ from it), or None
    outside a git checkout: figures from uncommitted code are marked as such."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+changes" if changed else "")


def _memory_gib() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * size / 2**30, 1)
