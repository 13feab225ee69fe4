"""The benchmark report file: sections merged by key, plus a description of the machine."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb


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


def _memory_gib() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * size / 2**30, 1)
