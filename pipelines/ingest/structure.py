"""Base FHIR structure of every raw resource (R4B models; R4 is not shipped and R4B is wire-compatible for the
resources CLINS uses), in one of two modes (KARTE_STRUCTURE_VALIDATION, docs/structure.md):

- `fast` (default): the schema check of pipelines/fhir/structure_schema.py on every resource (tens of
  thousands per second per core; the raw step runs it while it parses each resource anyway and leaves the
  verdict in staging.fast_structure_check, so this step re-reads only what fhir.resources must see), and
  fhir.resources where it adds value — every resource the fast check
  rejects, every resource of a source's first file (a new sender, or the consent / access feed the first time)
  and a deterministic 1-in-SAMPLE_EVERY sample of the rest. Where fhir.resources ran, its verdict and message
  are the ones of record: a fast reject it accepts passes (the fast check reads JSON types more strictly, e.g.
  "5" for an integer) and a sampled resource it rejects is quarantined even though the fast check passed it
  (counted as `missed`: the fast schema is out of step with fhir.resources — refresh it).
- `strict`: fhir.resources `model_validate` on every resource (~1.5–3k/s per core).

Strict mode runs in a process pool from POOL_THRESHOLD resources, fast mode from FAST_POOL_THRESHOLD.
Failures are recorded in staging.structure_failure (grain: one row per failing raw record); the bundle and
resource stages turn them into K-FHIR-STRUCTURE quarantine rows, so each record is accounted once.
"""

import collections
import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import orjson
import polars as pl
from fhir.resources.R4B import get_fhir_model_class

from pipelines.fhir import structure_compiled, structure_schema
from pipelines.ingest.raw_read import CHECKUP_DOCUMENT, FACILITY_ROW
from pipelines.ingest.tables import append
from pipelines.ingest.workers import process_pool, worker_count
from pipelines.warehouse import get_watermark, raw_lake, set_watermark, transaction

CONSUMER = "staging.fhir_structure"
#: fast mode: fhir.resources re-checks 1 in SAMPLE_EVERY of the resources the fast check passed. The sample
#: watches the fast check (a `missed` count above 0 means its schema is out of step with fhir.resources); it
#: is no guarantee for single resources, so it is kept small: ~900 resources of the 46k-record bench sample
SAMPLE_EVERY = 50
#: strict mode: below this many resources a process pool costs more than it saves
POOL_THRESHOLD = 2000
#: fast mode: the pool's own cost (pickling, forked workers: +0.6–1.0 CPU-s on the 46k-record bench sample,
#: ~2 CPU-s in one process) only pays off on an idle machine, so batches run in one process up to this size
FAST_POOL_THRESHOLD = 100_000
#: fast mode in one process: a block of at least this many resources is split with one forked helper process,
#: which inherits the models already imported here and checks the second half while this process checks the
#: first. The step runs alone (every later step waits for it), so the other core is otherwise idle; a fork
#: costs ≈ 10–30 ms, ≈ 100 resources' worth of fhir.resources
SPLIT_FROM = 400
MAX_ERRORS_SHOWN = 3
#: KARTE_STRUCTURE_VALIDATION → mode; `all` and `sample` are the names of earlier releases (`sample` ran
#: fhir.resources on the sample and new senders only: fast does that and checks the rest too)
MODES = {"fast": "fast", "strict": "strict", "all": "strict", "sample": "fast"}

# How each resource got its verdict in fast mode
FAST_PASS = 0  # the fast check passed it; fhir.resources did not run
CONFIRMED = 1  # fhir.resources ran and agreed with the fast check (pass or reject)
OVERRULED = 2  # the fast check rejected it, fhir.resources accepted it: it passes
MISSED = 3  # the fast check passed it, fhir.resources (sample / first file) rejected it: it fails


#: the resource types JP-CLINS documents and feeds carry (structure_compiled.WARM_TYPES), then the data types their
#: first validations import (the modules the step imported on the bench sample, ≈ 0.1 s under cProfile). Importing
#: them all cost 0.19 s in a fresh process: time this step would spend on the run's critical path while the
#: other core idles, so a run imports them beforehand: in its fhir.resources process (fhir_resources_process),
#: or on a thread beside the raw step's reading pool (preload_models).
PRELOADED_TYPES = (*structure_compiled.WARM_TYPES,
                   "Address", "Attachment", "CodeableConcept", "Coding", "ContactPoint", "Dosage", "Duration",
                   "Extension", "HumanName", "Identifier", "Meta", "Narrative", "Period", "Quantity", "Reference",
                   "Timing")
_preloading: threading.Thread | None = None


def preload_models() -> None:
    """Start importing PRELOADED_TYPES' models on a background thread (once per process). Call it after any
    process pool of the caller has forked: a fork in the middle of an import leaves the child a half-imported
    module. fhir.resources is only used once the thread is done (_models_ready), so two threads never import
    its circular modules at once."""
    global _preloading
    if _preloading is None:
        _preloading = threading.Thread(target=lambda: [get_fhir_model_class(t) for t in PRELOADED_TYPES],
                                       name="karte-fhir-models", daemon=True)
        _preloading.start()


def _models_ready() -> None:
    if _preloading is not None:
        _preloading.join()


def _import_models() -> None:
    """The fhir.resources process's start."""
    for resource_type in PRELOADED_TYPES:
        get_fhir_model_class(resource_type)


#: the run's fhir.resources process, once started (`start_fhir_resources_process`)
_validator: ProcessPoolExecutor | None = None
#: whether the caller lets a run start one (`fhir_resources_process`)
_may_start = False


@contextmanager
def fhir_resources_process() -> Iterator[None]:
    """Within the body, the run may start a process for the fast structure check's fhir.resources work
    (`start_fhir_resources_process`, which `ingest()`'s landing calls once it finds a new file); it ends with the
    body. A step run alone (a Dagster asset) checks in its own process."""
    global _may_start
    if _may_start:  # nested: the outer one is in charge
        yield
        return
    _may_start = True
    try:
        yield
    finally:
        _may_start = False
        stop_fhir_resources_process()


def start_fhir_resources_process() -> None:
    """Fork the process for the fast structure check's fhir.resources work (`_Checker` without a pool of its own),
    which imports the models as soon as it starts. Landing calls it once it finds new content: the import (≈ 0.1–
    0.2 s of Python, which on a thread would only take turns with the run's own Python) then runs on the other
    core while landing reads the new files and the raw step parses them, instead of in the structure step, which
    every later step waits for (1 × increment: that step 120–128 → 45–47 ms). A run with nothing new forks
    nothing. A raw step with a reading pool of its own stops it (`stop_fhir_resources_process`): its pool forks
    later, and the models are imported on a thread beside it (preload_models), as its view compilations need them
    too. A no-op outside `fhir_resources_process` or once started."""
    global _validator
    if _may_start and _validator is None:
        _validator = process_pool(1, then=_import_models)
        _validator.submit(int)  # forks now: a pool starts its processes at the first submit


def stop_fhir_resources_process(wait: bool = False) -> None:
    """End the run's fhir.resources process, if any (its work is done, or a reading pool takes over); `wait` for
    it to exit (its CPU time then counts among this process's finished children, as `karte bench` reads them)."""
    global _validator
    validator, _validator = _validator, None
    if validator is not None:
        validator.shutdown(wait=wait, cancel_futures=True)


@dataclass(frozen=True)
class StructureOutcome:
    """What one run of the step did; unpacks as (checked, failing) like earlier releases."""

    mode: str
    checked: int = 0
    failing: int = 0
    by_fhir_resources: int = 0  # resources fhir.resources validated
    overruled: int = 0
    missed: int = 0

    def __iter__(self) -> Iterator[int]:
        return iter((self.checked, self.failing))


def structure_error(resource_json: str) -> str | None:
    """fhir.resources' verdict on one resource's JSON text: why it is not valid FHIR R4 structure, or None."""
    try:
        obj = orjson.loads(resource_json)
    except orjson.JSONDecodeError:
        obj = None
    return fhir_resources_error(obj)


def fhir_resources_error(obj: object) -> str | None:
    """fhir.resources' verdict on a parsed resource. Messages name paths, never values (values may be patient
    identifiers)."""
    try:
        model = get_fhir_model_class(obj.get("resourceType")) if isinstance(obj, dict) else None
    except (KeyError, ValueError, TypeError):
        model = None
    if model is None:
        return structure_schema.NO_RESOURCE
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


def strict_verdict(resource_json: str, _full_check: bool = True) -> tuple[str | None, int]:
    return structure_error(resource_json), CONFIRMED


def fast_verdict(resource_json: str, full_check: bool, prechecked: bool = False,
                 problem: str | None = None) -> tuple[str | None, int, str | None]:
    """(error or None, how it was decided, the fast check's problem or None) for one resource in fast mode;
    `full_check` runs fhir.resources even when the fast check passes. `prechecked`: the fast check already ran
    (in the raw step) and found `problem`."""
    try:
        obj = orjson.loads(resource_json)
    except orjson.JSONDecodeError:
        obj = None
    if not prechecked:
        problem = structure_schema.structure_problem(obj)
    if problem is None and not full_check:
        return None, FAST_PASS, problem
    verdict = fhir_resources_error(obj)
    if (problem is None) == (verdict is None):
        return verdict, CONFIRMED, problem
    return verdict, OVERRULED if verdict is None else MISSED, problem


def _strict_chunk(items: list[tuple]) -> list[tuple[str | None, int, None]]:
    return [(*strict_verdict(item[0]), None) for item in items]


def _fast_chunk(items: list[tuple]) -> list[tuple[str | None, int, str | None]]:
    return [fast_verdict(*item) for item in items]


class _Checker:
    """Verdicts for blocks of (resource JSON, full check) in one process, or over a process pool (order kept)
    when the batch is at least `threshold` resources."""

    def __init__(self, mode: str, expected: int, workers: int | None = None, walked: int | None = None):
        _models_ready()  # before fhir.resources runs here, and before the pool forks
        self.work = _strict_chunk if mode == "strict" else _fast_chunk
        self.workers = worker_count(workers)
        # compiled once here, inherited by forked workers; the compiled check only for a batch whose fast checks
        # (`walked`, default all `expected`; none in strict mode) repay building it
        walked = 0 if mode == "strict" else expected if walked is None else walked
        structure_schema.warm_up(compiled=walked >= structure_compiled.WORTH_BUILDING)
        threshold = POOL_THRESHOLD if mode == "strict" else FAST_POOL_THRESHOLD
        self.pool = process_pool(self.workers) if expected >= threshold else None
        self.validator = _validator if self.pool is None and mode == "fast" else None
        # (a daemonic process — a partitioned run's map worker — may not fork one)
        self.split = self.pool is None and self.validator is None and self.workers > 1 and mode == "fast" \
            and not multiprocessing.current_process().daemon
        self.helper: ProcessPoolExecutor | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown()
        if self.helper is not None:
            self.helper.shutdown(wait=False, cancel_futures=True)
        if self.validator is not None:  # its work is done: the memory goes back now, not at the run's end
            stop_fhir_resources_process(wait=True)

    def __call__(self, items: list[tuple[str, bool]]) -> list[tuple[str | None, int]]:
        if self.validator is not None and items:
            try:
                return self.validator.submit(self.work, items).result()
            except BrokenProcessPool:  # killed (out of memory?): this process checks from here on
                self.validator = None
        if self.pool is None:
            return self._split(items) if self.split and len(items) >= SPLIT_FROM else self.work(items)
        size = max(500, len(items) // (self.workers * 2))
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        return [result for chunk in self.pool.map(self.work, chunks) for result in chunk]

    def _split(self, items: list[tuple]) -> list[tuple]:
        """The second half of `items` checked in the helper process while this one checks the first."""
        if self.helper is None:
            self.helper = process_pool(1)
        half = len(items) // 2
        try:
            there = self.helper.submit(self.work, items[half:])
        except BrokenProcessPool:
            there = None
        here = self.work(items[:half])
        if there is not None:
            try:
                return here + there.result()
            except BrokenProcessPool:
                pass
        self.split = False  # the helper was killed (out of memory?): this process checks the rest alone
        return here + self.work(items[half:])


def check_structure(texts: list[str], workers: int | None = None) -> list[str | None]:
    """Strict mode over a list: fhir.resources' error (or None) per resource."""
    with _Checker("strict", len(texts), workers) as check:
        return [error for error, _, _ in check([(t, True) for t in texts])]


def check_structure_fast(texts: list[str], full_check: list[bool],
                         workers: int | None = None) -> list[tuple[str | None, int]]:
    """Fast mode over a list: (error or None, FAST_PASS | CONFIRMED | OVERRULED | MISSED) per resource."""
    with _Checker("fast", len(texts), workers) as check:
        return [(error, how) for error, how, _ in check(list(zip(texts, full_check, strict=True)))]


#: raw rows that are FHIR resources (not registry CSV rows or 特定健診 CDA documents, which other stages check)
_FHIR_ROWS = f"r.resource_type IS NULL OR r.resource_type NOT IN ('{FACILITY_ROW}', '{CHECKUP_DOCUMENT}')"


#: ops.source_first_file holds what the raw rows up to this watermark say (its own: a partitioned run's merge
#: moves the structure step's watermark without it, and the next structure step catches up from here)
FIRST_FILES = "ops.source_first_file"


def _record_first_files(con: duckdb.DuckDBPyConnection, lo: int, hi: int) -> None:
    """ops.source_first_file from the FHIR rows in (lo, hi]: a source seen for the first time gets the lowest file
    id it has there, a source whose first file is older keeps it (a lower one replaces it). Idempotent. Leaves
    temp table window_first: the sources of those rows with their first file there."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE window_first AS
        SELECT coalesce(m.sender, m.kind) AS source, min(r.file_id) AS file_id
        FROM raw.resource r JOIN ops.file_manifest m USING (file_id)
        WHERE r.raw_id > {lo} AND r.raw_id <= {hi} AND ({_FHIR_ROWS}) GROUP BY 1""")
    con.execute(f"""DELETE FROM {FIRST_FILES} WHERE source IN (
                        SELECT source FROM window_first w JOIN {FIRST_FILES} s USING (source)
                        WHERE w.file_id < s.file_id)""")
    con.execute(f"INSERT INTO {FIRST_FILES} SELECT source, file_id FROM window_first ANTI JOIN {FIRST_FILES} "
                "USING (source)")


def _fast_window(con: duckdb.DuckDBPyConnection, lo: int, hi: int) -> tuple[int, int, int]:
    """Temp table window_rows: the window's FHIR rows with full_check (fhir.resources must see it), prechecked
    (the raw step ran the fast check), that check's problem and must_read. Returns how many need no reading
    (the raw step's fast check passed them and they need no full check), how many need the fast check here
    (the raw step did not run it) and how many are read."""
    # A source is a sender (医療機関番号), or the kind of feed for files that carry none (consent, access);
    # its first file with any resource is checked in full, whichever run brought it. Each source's first file
    # is kept in ops.source_first_file as rows arrive: finding it over every raw row read the whole raw lake on
    # every run (72 ms of a +1 % increment at 16 × the bench sample, and growing with the warehouse).
    _record_first_files(con, min(get_watermark(con, FIRST_FILES), lo), hi)
    set_watermark(con, FIRST_FILES, hi)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE window_rows AS
        WITH first_file AS (
            SELECT s.file_id FROM {FIRST_FILES} s JOIN window_first USING (source)),
        flagged AS (
            SELECT r.raw_id,
                   hash(r.raw_id) % {SAMPLE_EVERY} = 0 OR r.file_id IN (SELECT file_id FROM first_file) AS full_check,
                   c.raw_id IS NOT NULL AS prechecked, c.problem
            FROM raw.resource r LEFT JOIN staging.fast_structure_check c USING (raw_id)
            WHERE r.raw_id > {lo} AND r.raw_id <= {hi} AND ({_FHIR_ROWS}))
        SELECT *, full_check OR NOT prechecked OR problem IS NOT NULL AS must_read FROM flagged""")
    return con.execute("SELECT count(*) FILTER (WHERE NOT must_read), count(*) FILTER (WHERE NOT prechecked), "
                       "count(*) FILTER (WHERE must_read) FROM window_rows").fetchone()


def _selection_sql(mode: str, lo: int, hi: int) -> str:
    """The window's FHIR rows this step reads: (raw_id, resource, full_check[, prechecked, problem]); in fast
    mode from window_rows (_fast_window)."""
    if mode == "strict":
        return (f"SELECT r.raw_id, r.resource::VARCHAR AS resource, true AS full_check FROM raw.resource r "
                f"WHERE r.raw_id > {lo} AND r.raw_id <= {hi} AND ({_FHIR_ROWS}) ORDER BY r.raw_id")
    return """SELECT w.raw_id, r.resource::VARCHAR AS resource, w.full_check, w.prechecked, w.problem
              FROM window_rows w JOIN raw.resource r USING (raw_id) WHERE w.must_read ORDER BY w.raw_id"""


#: resources read from the warehouse at a time: a whole batch as Python strings would cost ~10 kB per resource
READ_BLOCK = 10_000


def stage_structure(con: duckdb.DuckDBPyConnection, mode: str = "fast") -> StructureOutcome:
    if mode not in MODES:
        raise ValueError(f"KARTE_STRUCTURE_VALIDATION must be fast or strict, not {mode!r}")
    mode = MODES[mode]
    _models_ready()  # also when there is nothing to check: no later step may import fhir.resources beside it
    lo = get_watermark(con, CONSUMER)
    hi = raw_lake.last_raw_id(con)
    raw_ids, errors, how, problems, checked_here = [], [], [], [], []
    passed_unread = 0
    with transaction(con):
        if hi > lo:
            # the rows to read are counted, not taken from the id span: a partitioned map step's shard holds ids
            # spread over the run's whole range (its window of 175k ids held 15k rows, and started a pool for them)
            if mode == "fast":
                passed_unread, unchecked, to_read = _fast_window(con, lo, hi)
            else:
                unchecked, to_read = 0, con.execute(f"SELECT count(*) FROM raw.resource r WHERE r.raw_id > {lo} "
                                                    f"AND r.raw_id <= {hi} AND ({_FHIR_ROWS})").fetchone()[0]
            with _Checker(mode, expected=to_read, walked=unchecked) as check:
                cursor = con.execute(_selection_sql(mode, lo, hi))
                while block := cursor.fetchmany(READ_BLOCK):
                    raw_ids += [row[0] for row in block]
                    # rows the raw step did not check (strict-mode or partitioned raw): their fast check is
                    # recorded here, so the table covers every row fast mode checked
                    checked_here += [mode == "fast" and not row[3] for row in block]
                    for error, decided, problem in check([row[1:] for row in block]):
                        errors.append(error)
                        how.append(decided)
                        problems.append(problem)
            con.execute("DROP TABLE IF EXISTS window_rows")
            con.execute("DROP TABLE IF EXISTS window_first")
        verdicts = pl.DataFrame({"raw_id": raw_ids, "structure_error": errors, "how": how, "problem": problems,
                                 "checked_here": checked_here},
                                schema={"raw_id": pl.Int64, "structure_error": pl.String, "how": pl.Int8,
                                        "problem": pl.String, "checked_here": pl.Boolean})
        failures = verdicts.filter(pl.col("structure_error").is_not_null()).select("raw_id", "structure_error")
        append(con, "staging.structure_failure", failures)
        append(con, "staging.fast_structure_check", verdicts.filter("checked_here").select("raw_id", "problem"))
        set_watermark(con, CONSUMER, hi)
    count = collections.Counter(how)
    return StructureOutcome(mode, checked=verdicts.height + passed_unread, failing=failures.height,
                            by_fhir_resources=verdicts.height - count[FAST_PASS], overruled=count[OVERRULED],
                            missed=count[MISSED])
