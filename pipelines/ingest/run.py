"""One ingest run end to end (what `karte ingest` and the Dagster job both do), step by step.

Each step reads from its watermark and commits its writes with its new watermark in one transaction,
so a run killed anywhere leaves a warehouse the next run simply continues. Independent steps run two at a
time (pipelines/ingest/schedule.py, `step_dependencies` below).
"""

import os
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from pipelines.config import Settings
from pipelines.consent import intervals
from pipelines.ingest import checkups, structure
from pipelines.ingest.archive import archive_finished_files
from pipelines.ingest.bundles import CONSUMER as BUNDLE_STEP
from pipelines.ingest.bundles import stage_bundles
from pipelines.ingest.collector import batch_collection
from pipelines.ingest.documents import CONSUMER as DOCUMENT_STEP
from pipelines.ingest.documents import stage_documents
from pipelines.ingest.landing import land_files, landing_result
from pipelines.ingest.lines import LINE_STAGES, stage_lines
from pipelines.ingest.raw import parse_landed_files
from pipelines.ingest.resources import clinical_stages, stage_resources
from pipelines.ingest.schedule import run_steps
from pipelines.ingest.upsert import CORE_TABLES, upsert
from pipelines.warehouse import cap_duckdb, connect, transaction


@dataclass
class IngestSummary:
    batch_id: int
    files_seen: int = 0
    files_ingested: int = 0
    files_skipped_duplicate: int = 0  # seen, not new: copies of landed content, and files_unchanged
    files_unchanged: int = 0  # left in the inbox unchanged since an earlier run (not read again)
    records_in: int = 0
    records_loaded: int = 0
    records_quarantined: int = 0
    records_duplicate: int = 0
    records_tombstoned: int = 0
    loaded_by_table: dict[str, int] = field(default_factory=dict)
    quarantined_by_rule: dict[str, int] = field(default_factory=dict)
    warehouse: str = ""
    uses_development_key: bool = False
    #: with an archive (Settings.archive): files moved there, byte-identical copies removed, files kept with why
    files_archived: int = 0
    files_removed_as_copies: int = 0
    files_kept_in_inbox: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@contextmanager
def ingest_connection(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """A write connection for ingest steps run outside `ingest()` (the Dagster assets, the partitioned run's
    merges), closed after them: DuckDB capped for the ingest (Settings.ingest_memory_limit, ingest_threads) and the
    objects from before the step kept from Python's collector, as in `ingest()` (pipelines/ingest/collector.py)."""
    with closing(connect(settings.warehouse)) as con, batch_collection():
        yield cap_duckdb(con, settings.ingest_memory_limit, settings.ingest_threads)


def start_batch(con: duckdb.DuckDBPyConnection, inbox: str) -> int:
    with transaction(con):
        batch_id = con.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM ops.batch").fetchone()[0]
        con.execute("INSERT INTO ops.batch (batch_id, started_at, inbox) VALUES (?, ?, ?)",
                    [batch_id, datetime.now(UTC).replace(tzinfo=None), inbox])
    return batch_id


def _maybe_crash(step: str) -> None:
    # Test hooks for the crash and concurrency tests: die like kill -9, or hold the warehouse a while,
    # right after `step` committed.
    if os.environ.get("KARTE_TEST_CRASH_AFTER") == step:
        os._exit(137)
    if os.environ.get("KARTE_TEST_PAUSE_AFTER") == step:
        time.sleep(float(os.environ.get("KARTE_TEST_PAUSE_SECONDS", "5")))


def processing_steps(settings: Settings) -> list[tuple[str, Callable[[duckdb.DuckDBPyConnection], object]]]:
    """Everything after landing, in dependency order: (name, step)."""
    key = settings.pseudonym_key
    steps: list[tuple[str, Callable]] = [
        (RAW_STEP, lambda con: parse_landed_files(con, settings.inbox, key)),
        ("staging.fhir_structure", lambda con: structure.stage_structure(con, settings.structure_validation)),
        ("staging.bundle", lambda con: stage_bundles(con, key)),
        ("staging.document", stage_documents),
        # early: with two lanes the checkup steps are the longest chain left (staging, then its upsert)
        (checkups.CONSUMER, lambda con: checkups.stage_checkups(con, key)),
    ]
    # then the rest of that chain, ahead of the steps the other lane can take meanwhile: ready steps start in
    # this order, and with core.patient last the checkup upsert (≈ 0.8 s) waited for every other staging step
    # and ran alone at the end of the run
    checkup_chain = [t for t in CORE_TABLES if t.table in ("patient", "checkup_result")]
    steps += [(t.consumer, lambda con, t=t: upsert(con, t)) for t in checkup_chain]
    steps += [(s.consumer, lambda con, s=s: stage_resources(con, s, key)) for s in clinical_stages()]
    steps += [(s.consumer, lambda con, s=s: stage_lines(con, s, key)) for s in LINE_STAGES]
    steps += [(t.consumer, lambda con, t=t: upsert(con, t)) for t in CORE_TABLES if t not in checkup_chain]
    steps.append((intervals.CONSUMER, intervals.derive_consent_intervals))
    return steps


RAW_STEP = "raw.resource"


def step_dependencies() -> dict[str, tuple[str, ...]]:
    """The steps each step waits for: the step whose watermark bounds what it reads, and beyond that the
    steps that share a table with it:
    - the clinical stages skip raw ids that already have an outcome, so the document upsert, which records
      outcomes for a document's supporting entries of any type, comes after them (checkup staging records
      outcomes only for checkup documents' Observations, which the observation stage does not read);
    - the document upsert reads what document and checkup staging both append to staging.document_resource;
    - the checkup upsert adds to core.patient the examinees it does not know, so it waits for core.patient.
    processing_steps' order respects all of this (tests/ingest/test_schedule.py), so it is also a valid serial
    run."""
    clinical = tuple(s.consumer for s in clinical_stages())
    after = {
        structure.CONSUMER: (RAW_STEP,),
        BUNDLE_STEP: (structure.CONSUMER,),
        DOCUMENT_STEP: (BUNDLE_STEP,),
        **dict.fromkeys(clinical, (BUNDLE_STEP,)),
        checkups.CONSUMER: (BUNDLE_STEP,),
        **{s.consumer: (structure.CONSUMER,) for s in LINE_STAGES},
        **{t.consumer: (BUNDLE_STEP if t.table == "patient" else t.staging_table,) for t in CORE_TABLES},
        intervals.CONSUMER: (intervals.UPSTREAM,),
    }
    after["core.document"] += (*clinical, checkups.CONSUMER)
    after["core.checkup_result"] += ("core.patient",)
    return after


def ingest(con: duckdb.DuckDBPyConnection, settings: Settings,
           progress: Callable[[str, int, int], None] | None = None) -> IngestSummary:
    """Run every step; `progress(step, done, total)` is called before each step (for a progress bar)."""
    with batch_collection(), structure.fhir_resources_process():
        return _ingest(con, settings, progress)


def _ingest(con: duckdb.DuckDBPyConnection, settings: Settings,
            progress: Callable[[str, int, int], None] | None) -> IngestSummary:
    cap_duckdb(con, settings.ingest_memory_limit, settings.ingest_threads)
    batch_id = start_batch(con, str(settings.inbox))
    steps = processing_steps(settings)
    if progress:
        progress("landing", 0, len(steps) + 1)
    land_files(con, settings.inbox, batch_id, on_new_file=structure.start_fhir_resources_process)
    _maybe_crash("landing")
    started: set[str] = set()  # a step retried alone (schedule.py) is counted once

    def on_start(name: str) -> None:
        started.add(name)
        progress(name, len(started), len(steps) + 1)

    run_steps(con, steps, step_dependencies(), lanes=settings.ingest_lanes, on_start=on_start if progress else None,
              on_done=lambda name, _: _maybe_crash(name))
    summary = run_summary(con, batch_id, settings)
    if settings.archive is not None:
        archive_into_summary(con, settings, summary)
    return summary


def archive_into_summary(con: duckdb.DuckDBPyConnection, settings: Settings, summary: IngestSummary) -> None:
    """Move the finished inbox files to the archive and say so in `summary` (after the run's summarise)."""
    archived = archive_finished_files(con, settings.inbox, settings.archive)
    summary.files_archived = archived.moved
    summary.files_removed_as_copies = archived.removed_as_copies
    summary.files_kept_in_inbox = archived.kept


def run_summary(con: duckdb.DuckDBPyConnection, batch_id: int, settings: Settings) -> IngestSummary:
    """The summary of a finished run: record counts from `summarise`, file counts from its landing."""
    summary = summarise(con, batch_id)
    landing = landing_result(con, batch_id)
    summary.files_seen = landing.files_seen
    summary.files_ingested = landing.files_new
    summary.files_skipped_duplicate = landing.files_skipped_duplicate
    summary.files_unchanged = landing.files_unchanged
    summary.warehouse = str(settings.warehouse)
    summary.uses_development_key = settings.uses_development_key
    return summary


def summarise(con: duckdb.DuckDBPyConnection, batch_id: int) -> IngestSummary:
    """Counts over the files this run completed (every record of theirs has ended somewhere). Files a
    crashed run left half-done are completed, and counted, by the run that finishes them."""
    with transaction(con):
        con.execute(
            """
            UPDATE ops.file_manifest SET reported_batch_id = ?
            WHERE reported_batch_id IS NULL AND parsed AND NOT EXISTS (
                SELECT 1 FROM raw.resource r ANTI JOIN ops.record_outcome o USING (raw_id)
                WHERE r.file_id = file_manifest.file_id)
            """,
            [batch_id],
        )
        con.execute("UPDATE ops.batch SET finished_at = ? WHERE batch_id = ?",
                    [datetime.now(UTC).replace(tzinfo=None), batch_id])
    files = f"(SELECT file_id FROM ops.file_manifest WHERE reported_batch_id = {batch_id})"
    # outcomes and loaded rows by table in one read (a second join for the tables cost 42 ms at 16 × the sample)
    outcomes: dict[str, int] = {}
    by_table: dict[str, int] = {}
    for outcome, table, count in con.execute(
            f"""SELECT o.outcome, o.table_name, count(*) FROM raw.resource r JOIN ops.record_outcome o USING (raw_id)
                WHERE r.file_id IN {files} GROUP BY ALL ORDER BY ALL""").fetchall():
        outcomes[outcome] = outcomes.get(outcome, 0) + count
        if outcome == "loaded":
            by_table[table] = count
    raw_records = con.execute(f"SELECT count(*) FROM raw.resource WHERE file_id IN {files}").fetchone()[0]
    unparsed = con.execute(
        f"""SELECT coalesce(sum(record_count), 0) FROM ops.quarantine
            WHERE scope IN ('file', 'line') AND file_id IN {files}""").fetchone()[0]
    by_rule = dict(con.execute(
        f"""SELECT rule_id, sum(record_count)::BIGINT FROM ops.quarantine
            WHERE file_id IN {files} AND record_count > 0 GROUP BY ALL ORDER BY 2 DESC, 1""").fetchall())
    summary = IngestSummary(batch_id=batch_id)
    summary.records_loaded = outcomes.get("loaded", 0)
    summary.records_duplicate = outcomes.get("duplicate", 0)
    summary.records_tombstoned = outcomes.get("tombstoned", 0)
    summary.records_quarantined = outcomes.get("quarantined", 0) + int(unparsed)
    summary.records_in = raw_records + int(unparsed)
    summary.loaded_by_table = by_table
    summary.quarantined_by_rule = by_rule
    return summary
