"""Raw: every landed file becomes rows with provenance (raw.bundle + raw.resource), or a file/line-level
quarantine row. Files are read in groups (pipelines/ingest/raw_read.py: parse, seal, and in fast structure mode
the schema check), each group written in one transaction, in file order, its records as one file of the raw
lake (pipelines/warehouse/raw_lake.py).

Large batches are read by a pool of worker processes, one group each, while this process writes the groups
they finished: reading is about three quarters of the step's CPU, and the order of writing (hence every raw
id) does not depend on which worker finished first."""

from collections import deque
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import duckdb

from pipelines.config import load_settings
from pipelines.fhir import structure_schema
from pipelines.ingest import structure
from pipelines.ingest import workers as workers_module
from pipelines.ingest.raw_read import LandedFile, RawGroup, read_group, unpacked_bytes
from pipelines.warehouse import raw_lake, transaction

#: flush a transaction after this many input bytes, so memory is bounded by the group, not the inbox
#: (16 MiB of files hold ~14k resources; larger groups bought no speed in `karte bench`)
GROUP_BYTES = 16 * 1024**2
#: from this many pending bytes (unpacked) the files are read by a pool, in groups small enough that every worker
#: gets two: the 16 × increment's 19 MB read 0.45 → 0.41 s in 4 groups, and the structure step's fhir.resources
#: models import meanwhile (0.29 → 0.15 s); a smaller batch (the 1 × increment's 0.9 MB) is read in this process
POOL_MIN_BYTES = 8 * 1024**2
#: a batch read in this process from this many bytes still uses the compiled structure check: enabling it costs
#: ~0.012 s, repaid from structure_compiled.WORTH_BUILDING resources (~2 kB of bundle JSON each)
COMPILED_MIN_BYTES = 4 * 1024**2


def _flush(con: duckdb.DuckDBPyConnection, group: RawGroup) -> int:
    with transaction(con):
        # Ids continue from the largest written, read inside the transaction, so a rolled-back group leaves no gap
        # and a re-run after a crash assigns exactly the ids an uninterrupted run would have. The group is
        # already in (file, line, entry) order, so a row's position is its raw id's offset.
        raw_base = raw_lake.last_raw_id(con) + 1
        bundle_base = con.execute("SELECT coalesce(max(bundle_key), 0) FROM raw.bundle").fetchone()[0] + 1
        for name, table in (("group_resource", group.resources), ("group_bundle", group.bundles),
                            ("group_quarantine", group.quarantine)):
            con.register(name, table)
        # A plain scan keeps the table's order (insertion order is preserved), which the lake file's row groups
        # need for the staging steps' raw id windows to skip the others.
        raw_lake.append(con, f"""
            SELECT pos + {raw_base} AS raw_id, file_id, batch_id, bundle_seq + {bundle_base} AS bundle_key, line_no,
                   entry_index, full_url, resource_type, resource
            FROM group_resource""")
        con.execute(f"INSERT INTO staging.fast_structure_check SELECT pos + {raw_base}, structure_problem "
                    "FROM group_resource WHERE structure_checked")
        con.execute(
            f"""
            INSERT INTO raw.bundle
            SELECT x.bundle_seq + {bundle_base}, x.file_id, f.batch_id, x.line_no, x.entry_count, x.entry_types,
                   e.first_pos + {raw_base}, e.last_pos + {raw_base}, x.envelope
            FROM group_bundle x JOIN ops.file_manifest f USING (file_id)
            LEFT JOIN (SELECT bundle_seq, min(pos) AS first_pos, max(pos) AS last_pos FROM group_resource
                       WHERE bundle_seq IS NOT NULL GROUP BY bundle_seq) e USING (bundle_seq)
            ORDER BY x.bundle_seq
            """
        )
        con.execute(
            """
            INSERT INTO ops.quarantine (batch_id, file_id, source_file, line_no, scope, rule_id, message,
                                        record_count, raw, institution_number)
            SELECT m.batch_id, q.file_id, q.source_file, q.line_no, q.scope, q.rule_id, q.message, 1, q.raw, m.sender
            FROM group_quarantine q JOIN ops.file_manifest m USING (file_id)
            """
        )
        # IN (SELECT unnest(?)), not IN ?: DuckDB matches a list parameter row by row, 16 ms against 1 ms for 600
        # files of a 90,000-row manifest (16 × the bench sample), and the manifest grows with every run
        con.execute("UPDATE ops.file_manifest SET parsed = true WHERE file_id IN (SELECT unnest(?))",
                    [[f.file_id for f in group.files]])
    for name in ("group_resource", "group_bundle", "group_quarantine"):
        con.unregister(name)
    return group.resources.num_rows


class RawWriteError(RuntimeError):
    """Writing a group of files to raw failed (disk full, I/O error); the group was rolled back."""


def _flush_or_explain(con: duckdb.DuckDBPyConnection, group: RawGroup) -> int:
    try:
        return _flush(con, group)
    except (duckdb.IOException, OSError) as exc:
        paths = [f.path for f in group.files]
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        raise RawWriteError(f"could not write {shown} to the warehouse (rolled back; the next run retries): "
                            f"{str(exc).splitlines()[0]}") from exc


def reading_plan(total_bytes: int, workers: int) -> tuple[int, int]:
    """(processes reading, bytes per group) for a batch of `total_bytes` unpacked: this process alone below
    POOL_MIN_BYTES, else `workers` of them with groups of at most GROUP_BYTES and small enough that each worker
    reads two (one group per worker would leave the last one's write alone at the end)."""
    if total_bytes < POOL_MIN_BYTES or workers <= 1:
        return 1, GROUP_BYTES
    return workers, max(1, min(GROUP_BYTES, -(-total_bytes // (2 * workers))))


def _groups(pending: list[tuple[LandedFile, int]], group_bytes: int) -> Iterator[list[LandedFile]]:
    """Consecutive files of about `group_bytes` of text each, from (file, its unpacked size)."""
    group, size = [], 0
    for landed, unpacked in pending:
        group.append(landed)
        size += unpacked
        if size >= group_bytes:
            yield group
            group, size = [], 0
    if group:
        yield group


def _read_in_order(groups: list[list[LandedFile]], read, workers: int,
                   forked: Callable[[], object] = lambda: None) -> Iterator[RawGroup]:
    """Each group read, in order. With a pool, at most one group per worker waits to be written beyond
    those being read, so memory follows the group size, not the batch; `forked()` is called once the pool's
    workers have started (never without a pool)."""
    if workers <= 1:
        yield from map(read, groups)
        return
    with workers_module.process_pool(workers) as pool:
        in_flight: deque = deque()
        for group in groups:
            in_flight.append(pool.submit(read, group))
            if len(in_flight) == 1:
                forked()  # a fork-context pool starts all its workers at the first submit
            if len(in_flight) > workers:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()


def parse_landed_files(con: duckdb.DuckDBPyConnection, inbox: Path, pseudonym_key: bytes | None = None,
                       precheck: bool | None = None, workers: int | None = None) -> int:
    """Parse every landed, not yet parsed file into raw; returns the number of raw rows written. Identifying
    values are sealed under a key derived from pseudonym_key (default: the configured one). `precheck` (default:
    the configured structure mode is fast) runs the fast structure check on each FHIR resource as it is parsed,
    into staging.fast_structure_check; `workers` (default: one per core) read large batches in parallel."""
    settings = load_settings() if pseudonym_key is None or precheck is None else None
    key = settings.pseudonym_key if pseudonym_key is None else pseudonym_key
    if precheck is None:
        precheck = structure.MODES.get(settings.structure_validation) == "fast"
    raw_lake.remove_unlisted(con)  # what a killed or rolled-back earlier write left
    # sizes counted unpacked: 16 MiB of 特定健診 ZIPs hold ~100 MiB of CDA documents
    landed = [LandedFile(*row) for row in con.execute(
        "SELECT file_id, path, kind, size_bytes, batch_id FROM ops.file_manifest WHERE NOT parsed ORDER BY file_id"
    ).fetchall()]
    pending = [(file, unpacked_bytes(inbox / file.path, file.size_bytes)) for file in landed]
    total = sum(unpacked for _, unpacked in pending)
    pool_size, group_bytes = reading_plan(total, workers_module.worker_count(workers))
    if precheck and total >= COMPILED_MIN_BYTES:
        # the compiled structure check, enabled before the pool forks so every worker inherits its types
        structure_schema.warm_up()
    read = partial(read_group, inbox=inbox, key=key, precheck=precheck)
    if pool_size > 1:
        structure.stop_fhir_resources_process()
    # the structure step comes next; with a pool its fhir.resources models import meanwhile, beside this step's
    # writes (a small batch is read in this process, where the import would only compete with reading)
    groups = _read_in_order(list(_groups(pending, group_bytes)), read, pool_size, forked=structure.preload_models)
    written = sum(_flush_or_explain(con, group) for group in groups)
    raw_lake.compact(con)  # one file per group adds up over the runs (pipelines/warehouse/raw_lake.py)
    return written
