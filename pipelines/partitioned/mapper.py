"""The map steps: one shard of partitions in a private scratch DuckDB, with the unchanged ingest steps.

- parse_shard: land the shard's files (their manifest rows, copied) and parse them into raw — ids local to the
  scratch, in file order, which the raw merge turns into the ids a single-process run assigns.
- stage_shard: copy the shard's raw rows (global ids by now) from the warehouse and run every staging step.

Both read the warehouse read-only (DuckDB allows many read-only processes while nobody writes) and write only
their scratch file and their partitions of the lake."""

import os
import shutil
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipelines.bench import own_peak_rss_kib
from pipelines.config import Settings
from pipelines.fhir import structure_schema
from pipelines.ingest import structure
from pipelines.ingest.collector import batch_collection
from pipelines.ingest.raw import parse_landed_files
from pipelines.partitioned.lake import Columns, export_tables, phase_dir, register_file_partitions
from pipelines.partitioned.plan import Shard
from pipelines.partitioned.steps import split_steps
from pipelines.views.fhirpath import sql_str
from pipelines.warehouse import cap_duckdb, connect, raw_lake

RAW_TABLES = ["raw.resource", "raw.bundle", "ops.quarantine"]
#: ops ledgers the staging steps append to (the rest of ops is bookkeeping the reduce writes itself)
STAGING_LEDGERS = ["ops.quarantine", "ops.record_outcome"]


@dataclass
class MapResult:
    shard: Shard
    phase: str
    schemas: dict[str, Columns]
    watermarks: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    #: the map process's own peak resident memory when the step ended (a pool process keeps its high-water mark
    #: across the shards it ran); the parent cannot tell it: ru_maxrss of its children carries the parent's own
    #: size into every child spawned after the parent grew
    peak_rss_kib: int = 0
    process_id: int = field(default_factory=os.getpid)  # the map process that ran the step


def _scratch(shard: Shard, phase: str, settings: Settings) -> duckdb.DuckDBPyConnection:
    """A fresh scratch warehouse (a retried step starts over) with the real warehouse attached read-only as wh."""
    path = phase_dir(Path(shard.lake), shard.batch_id, "_scratch") / f"{phase}-{shard.name}.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    shutil.rmtree(path.with_name(path.name + raw_lake.SUFFIX), ignore_errors=True)  # its raw lake
    con = connect(path)
    cap_duckdb(con, settings.ingest_memory_limit, settings.ingest_threads)
    con.execute(f"ATTACH {sql_str(Path(settings.warehouse).as_posix())} AS wh (READ_ONLY)")
    register_file_partitions(con, shard)
    return con


def _clear_shard_files(dest: Path, shard: Shard) -> None:
    """A retried step rewrites its files; remove what an earlier attempt of this shard left."""
    if dest.is_dir():
        for old in dest.rglob(f"{shard.name}_*.parquet"):
            old.unlink()


def parse_shard(settings: Settings, shard: Shard) -> MapResult:
    with batch_collection():
        return _parse_shard(settings, shard)


def _parse_shard(settings: Settings, shard: Shard) -> MapResult:
    dest = phase_dir(Path(shard.lake), shard.batch_id, "raw")
    _clear_shard_files(dest, shard)
    with closing(_scratch(shard, "raw", settings)) as con:
        con.execute("INSERT INTO ops.file_manifest SELECT * FROM wh.ops.file_manifest "
                    "WHERE file_id IN (SELECT file_id FROM file_part)")
        con.execute("DETACH wh")
        # A shard is already one of several in parallel: it reads its files in one process. Its fast structure
        # check runs in the staging phase (the raw phase's row ids are the shard's own).
        rows = parse_landed_files(con, settings.inbox, settings.pseudonym_key, precheck=False, workers=1)
        schemas = export_tables(con, RAW_TABLES, dest, shard)
    return MapResult(shard, "raw", schemas, rows=rows, peak_rss_kib=own_peak_rss_kib())


def _copy_structure_context(con: duckdb.DuckDBPyConnection) -> list[int]:
    """The structure step checks a source's first file (by file id, over all raw rows) in full. A shard may not
    hold that file, so its first FHIR row is copied in for the step to see, and removed after it. Returns the
    stub files' ids."""
    fhir_rows = structure._FHIR_ROWS  # the same row filter the structure step uses
    stubs = [f for (f,) in con.execute(
        f"""WITH first_file AS (
                SELECT coalesce(m.sender, m.kind) AS source, min(r.file_id) AS file_id
                FROM wh.raw.resource r JOIN wh.ops.file_manifest m USING (file_id) WHERE {fhir_rows} GROUP BY 1)
            SELECT f.file_id FROM first_file f
            WHERE f.source IN (SELECT coalesce(sender, kind) FROM ops.file_manifest)
              AND f.file_id NOT IN (SELECT file_id FROM file_part)""").fetchall()]
    if stubs:
        con.execute("INSERT INTO ops.file_manifest SELECT * FROM wh.ops.file_manifest WHERE file_id IN ?", [stubs])
        raw_lake.append(con, f"""SELECT * FROM wh.raw.resource r WHERE r.file_id IN ? AND ({fhir_rows})
                                  QUALIFY row_number() OVER (PARTITION BY r.file_id ORDER BY r.raw_id) = 1
                                  ORDER BY r.raw_id""", [stubs])
    return stubs


def _remove_structure_context(con: duckdb.DuckDBPyConnection, stubs: list[int]) -> None:
    if not stubs:
        return
    for table in ("staging.structure_failure", "staging.fast_structure_check"):
        con.execute(f"DELETE FROM {table} WHERE raw_id IN (SELECT raw_id FROM raw.resource WHERE file_id IN ?)",
                    [stubs])
    raw_lake.delete_where(con, "file_id IN ?", [stubs])
    con.execute("DELETE FROM ops.file_manifest WHERE file_id IN ?", [stubs])


def stage_shard(settings: Settings, shard: Shard) -> MapResult:
    with batch_collection():
        return _stage_shard(settings, shard)


def _stage_shard(settings: Settings, shard: Shard) -> MapResult:
    dest = phase_dir(Path(shard.lake), shard.batch_id, "staging")
    _clear_shard_files(dest, shard)
    _, staging_steps, _ = split_steps(settings)
    # A map process stages shard after shard: the compiled structure check (~0.012 CPU-s to enable, once per
    # process) repays itself within the first (the Python walk cost 3.3 of the 16 s the sample's four shards
    # took to stage)
    structure_schema.warm_up(compiled=True)
    with closing(_scratch(shard, "staging", settings)) as con:
        for table in ("ops.file_manifest", "raw.bundle"):
            con.execute(f"INSERT INTO {table} SELECT * FROM wh.{table} WHERE file_id IN (SELECT file_id FROM file_part)")
        raw_lake.append(con, "SELECT * FROM wh.raw.resource WHERE file_id IN (SELECT file_id FROM file_part) "
                             "ORDER BY raw_id")
        stubs = _copy_structure_context(con)
        con.execute("DETACH wh")
        for name, step in staging_steps:
            step(con)
            if name == structure.CONSUMER:
                _remove_structure_context(con, stubs)
        staging_tables = [f"staging.{t}" for (t,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'staging' ORDER BY 1").fetchall()]
        schemas = export_tables(con, staging_tables + STAGING_LEDGERS, dest, shard)
        # the structure step's first-file bookkeeping stays in the shard: the warehouse's catches up by itself
        watermarks = dict(con.execute("SELECT consumer, last_id FROM ops.watermark WHERE consumer <> ?",
                                      [structure.FIRST_FILES]).fetchall())
        rows = con.execute("SELECT count(*) FROM raw.resource").fetchone()[0]
    return MapResult(shard, "staging", schemas, watermarks, rows, own_peak_rss_kib())
