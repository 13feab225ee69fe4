"""What a report read and which code wrote it (its footer and the adoption_inputs table)."""

import functools
import subprocess
from datetime import UTC, datetime
from importlib import metadata

import duckdb

from pipelines.config import PROJECT_ROOT


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "--no-optional-locks", *args], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=10, check=False)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def code_version() -> str:
    """`git describe` of the checkout, marked `-dirty` when tracked files have uncommitted changes; the package
    version outside a checkout. (--no-optional-locks and no `describe --dirty`: reading never writes the index.)"""
    described = _git("describe", "--always", "--tags")
    if described:
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        return f"git {described}{'-dirty' if dirty else ''}"
    try:
        return f"karte {metadata.version('karte')}"
    except metadata.PackageNotFoundError:
        return "karte (unknown version)"


def warehouse_snapshot(con: duckdb.DuckDBPyConnection) -> dict:
    """The last finished ingest run and how many files the warehouse holds: what this report has seen."""
    batch, finished = con.execute(
        "SELECT max(batch_id), max(finished_at) FROM ops.batch WHERE finished_at IS NOT NULL").fetchone()
    files, kinds = con.execute(
        "SELECT count(*), string_agg(DISTINCT kind, ', ' ORDER BY kind) FROM ops.file_manifest").fetchone()
    return {"last_batch_id": batch, "last_batch_finished_at": str(finished) if finished else None,
            "files_landed": files, "file_kinds": kinds}


def generated_at() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
