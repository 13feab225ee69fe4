"""Base FHIR structure check with fhir.resources (R4B models; R4 is not shipped and R4B is wire-compatible
for the resources CLINS uses).

At ~1.5–3k resources/s per core it is ~50× slower than parsing, so it is its own step with a mode
(KARTE_STRUCTURE_VALIDATION): `all` checks every resource in a process pool; `sample` checks a
deterministic 1-in-SAMPLE_EVERY share plus every resource from a sender not seen before; `off` skips.
Failures are recorded in staging.structure_failure; the bundle and resource stages turn them into
K-FHIR-STRUCTURE quarantine rows, so each record is accounted once.
"""

import os
from concurrent.futures import ProcessPoolExecutor

import duckdb
import orjson
import polars as pl
from fhir.resources.R4B import get_fhir_model_class

from pipelines.ingest.raw import FACILITY_ROW
from pipelines.ingest.tables import append
from pipelines.warehouse import get_watermark, set_watermark, transaction

CONSUMER = "staging.fhir_structure"
SAMPLE_EVERY = 20
#: below this many resources a process pool costs more than it saves
POOL_THRESHOLD = 2000
MAX_ERRORS_SHOWN = 3


def structure_error(resource_json: str) -> str | None:
    """Why the resource is not valid FHIR R4 structure, or None. Messages name paths, never values
    (values may be patient identifiers)."""
    try:
        obj = orjson.loads(resource_json)
        model = get_fhir_model_class(obj.get("resourceType")) if isinstance(obj, dict) else None
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
        model = None
    if model is None:
        return "entry has no resource with a known FHIR resourceType"
    try:
        model.model_validate(obj)
    except Exception as exc:  # noqa: BLE001 — pydantic.ValidationError or a model's own error: all are verdicts
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        shown = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors()[:MAX_ERRORS_SHOWN]]
        more = len(errors()) - len(shown)
        return "; ".join(shown) + (f" (+{more} more)" if more > 0 else "")
    return None


def _check_chunk(texts: list[str]) -> list[str | None]:
    return [structure_error(t) for t in texts]


def check_structure(texts: list[str], workers: int | None = None) -> list[str | None]:
    if len(texts) < POOL_THRESHOLD:
        return _check_chunk(texts)
    workers = workers or os.cpu_count() or 1
    size = max(500, len(texts) // (workers * 4))
    chunks = [texts[i:i + size] for i in range(0, len(texts), size)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return [err for chunk in pool.map(_check_chunk, chunks) for err in chunk]


def _selection_sql(mode: str, lo: int, hi: int) -> str:
    base = f"raw_id > {lo} AND raw_id <= {hi} AND resource_type IS DISTINCT FROM '{FACILITY_ROW}'"
    if mode == "sample":
        # Senders seen before this range are trusted for most rows; new senders are checked in full.
        return f"""SELECT r.raw_id, r.resource::VARCHAR AS resource FROM raw.resource r
                   JOIN ops.file_manifest m USING (file_id)
                   WHERE {base} AND (hash(r.raw_id) % {SAMPLE_EVERY} = 0 OR m.sender IS NULL OR m.sender NOT IN (
                       SELECT sender FROM ops.file_manifest f WHERE f.sender IS NOT NULL AND f.file_id IN (
                           SELECT file_id FROM raw.resource WHERE raw_id <= {lo})))"""
    return f"SELECT raw_id, resource::VARCHAR AS resource FROM raw.resource WHERE {base}"


def stage_structure(con: duckdb.DuckDBPyConnection, mode: str = "all") -> tuple[int, int]:
    """Returns (resources checked, resources failing)."""
    if mode not in ("all", "sample", "off"):
        raise ValueError(f"KARTE_STRUCTURE_VALIDATION must be all, sample or off, not {mode!r}")
    lo = get_watermark(con, CONSUMER)
    hi = con.execute("SELECT coalesce(max(raw_id), 0) FROM raw.resource").fetchone()[0]
    rows = con.sql(_selection_sql(mode, lo, hi)).pl() if hi > lo and mode != "off" else None
    checked = failing = 0
    with transaction(con):
        if rows is not None and rows.height:
            errors = check_structure(rows["resource"].to_list())
            failures = rows.select("raw_id").with_columns(structure_error=pl.Series(errors, dtype=pl.String))
            failures = failures.filter(pl.col("structure_error").is_not_null())
            checked, failing = rows.height, failures.height
            append(con, "staging.structure_failure", failures)
        set_watermark(con, CONSUMER, hi)
    return checked, failing
