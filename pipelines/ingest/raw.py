"""Raw: every landed file becomes rows with provenance (raw.bundle + raw.resource), or a file/line-level
quarantine row. Files are processed in groups, each group in one transaction.

Rows are verbatim but for identifying values, sealed before anything is written (pipelines/ingest/vault.py):
a resource's names, identifiers, phones and addresses, a 特定健診 CDA document whole, and the raw text of an
unreadable line or file whole."""

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import orjson
import polars as pl

from pipelines.config import load_settings
from pipelines.ingest.reader import Unit, read_csv_rows, read_json_units
from pipelines.ingest.vault import seal, seal_resource
from pipelines.warehouse import transaction

#: kind of inbox file → the resourceType every line must have (fhir files hold Bundles)
LINE_RESOURCE = {"fhir": "Bundle", "consent": "Consent", "access": "AuditEvent"}
LINE_RULE = {"fhir": "K-NOT-BUNDLE", "consent": "K-CONSENT", "access": "K-AUDIT"}
FACILITY_ROW = "FacilityRegistryRow"
#: one person's 特定健診 CDA document from an archive: {"member": zip member name, "cda": XML text}
CHECKUP_DOCUMENT = "CheckupDocument"

#: flush a transaction after this many input bytes, so memory is bounded by the group, not the inbox
#: (16 MiB of files hold ~14k resources; larger groups bought no speed in `karte bench`)
GROUP_BYTES = 16 * 1024**2


@dataclass
class _RawBuffer:
    """Column lists for one transaction's worth of raw rows."""

    resources: dict[str, list] = field(default_factory=lambda: {k: [] for k in _RESOURCE_COLS})
    bundles: dict[str, list] = field(default_factory=lambda: {k: [] for k in _BUNDLE_COLS})
    quarantine: list[dict] = field(default_factory=list)
    file_ids: list[int] = field(default_factory=list)

    def add_resource(self, file_id, line_no, bundle_seq, entry_index, full_url, resource_type, text):
        r = self.resources
        r["file_id"].append(file_id)
        r["line_no"].append(line_no)
        r["bundle_seq"].append(bundle_seq)
        r["entry_index"].append(entry_index)
        r["full_url"].append(full_url)
        r["resource_type"].append(resource_type)
        r["resource"].append(text)


_RESOURCE_COLS = ["file_id", "line_no", "bundle_seq", "entry_index", "full_url", "resource_type", "resource"]
_BUNDLE_COLS = ["bundle_seq", "file_id", "line_no", "entry_count", "entry_types", "envelope"]


def _decode(text: bytes | None) -> str | None:
    return None if text is None else text.decode("utf-8", errors="replace")


def _add_bundle(buf: _RawBuffer, file_id: int, unit: Unit, key: bytes) -> None:
    bundle = unit.obj
    entries = bundle.get("entry")
    entries = entries if isinstance(entries, list) else []
    seq = len(buf.bundles["bundle_seq"])
    types = []
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        types.append(rtype or "")
        full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
        payload = seal_resource(resource, key) if isinstance(resource, dict) else entry
        buf.add_resource(file_id, unit.line_no, seq, index, full_url if isinstance(full_url, str) else None,
                         rtype, orjson.dumps(payload).decode())
    envelope = {k: v for k, v in bundle.items() if k != "entry"}
    b = buf.bundles
    b["bundle_seq"].append(seq)
    b["file_id"].append(file_id)
    b["line_no"].append(unit.line_no)
    b["entry_count"].append(len(entries))
    b["entry_types"].append(types)
    b["envelope"].append(orjson.dumps(envelope).decode())


def _quarantine_unit(buf: _RawBuffer, file_id: int, path: str, kind: str, unit: Unit, key: bytes) -> None:
    # Text that could not be parsed cannot be walked for identifiers: it is kept sealed whole.
    raw = _decode(unit.text)
    buf.quarantine.append(
        {
            "file_id": file_id,
            "source_file": path,
            "line_no": unit.line_no,
            "scope": "file" if unit.line_no is None else "line",
            "rule_id": unit.rule_id,
            "message": unit.message,
            "raw": None if raw is None else seal(raw, key),
            "kind": kind,
        }
    )


def _read_archive(buf: _RawBuffer, file_id: int, full: Path, path: str, key: bytes) -> None:
    """A 特定健診 ZIP: one raw row per person document, or the whole archive quarantined (bad zip, bad
    index/summary, counts that do not match what it holds)."""
    from pipelines.checkups.archive import read_archive

    archive = read_archive(full)
    if archive.error:
        rule_id, message = archive.error
        _quarantine_unit(buf, file_id, path, "checkups", Unit(None, None, rule_id=rule_id, message=message), key)
        return
    for position, (member, xml) in enumerate(archive.documents, start=1):
        buf.add_resource(file_id, position, None, None, member, CHECKUP_DOCUMENT,
                         orjson.dumps({"member": member, "cda": seal(xml, key)}).decode())


def _read_file(buf: _RawBuffer, file_id: int, inbox: Path, path: str, kind: str, key: bytes) -> None:
    full = inbox / path
    if full.is_symlink():
        # A link could point anywhere (/etc/…): its target is neither read nor kept.
        _quarantine_unit(buf, file_id, path, kind, Unit(None, None, rule_id="K-FILE-READ",
                                                        message="symbolic links in the inbox are not followed"), key)
        return
    if kind == "checkups":
        _read_archive(buf, file_id, full, path, key)
        return
    if kind == "facilities":
        for unit in read_csv_rows(full):
            if unit.ok:
                buf.add_resource(file_id, unit.line_no, None, None, None, FACILITY_ROW, unit.text.decode())
            else:
                _quarantine_unit(buf, file_id, path, kind, unit, key)
        return
    expected = LINE_RESOURCE[kind]
    for unit in read_json_units(full):
        if unit.ok and not (isinstance(unit.obj, dict) and unit.obj.get("resourceType") == expected):
            found = unit.obj.get("resourceType") if isinstance(unit.obj, dict) else type(unit.obj).__name__
            unit = Unit(unit.line_no, unit.text, rule_id=LINE_RULE[kind],
                        message=f"expected a {expected} resource, found {found!r}")
        if not unit.ok:
            _quarantine_unit(buf, file_id, path, kind, unit, key)
        elif kind == "fhir":
            _add_bundle(buf, file_id, unit, key)
        else:
            buf.add_resource(file_id, unit.line_no, None, None, None, expected,
                             orjson.dumps(seal_resource(unit.obj, key)).decode())


def _flush(con: duckdb.DuckDBPyConnection, buf: _RawBuffer, batch_of_file: dict[int, int]) -> int:
    resources = pl.DataFrame(buf.resources, schema={
        "file_id": pl.Int64, "line_no": pl.Int32, "bundle_seq": pl.Int64, "entry_index": pl.Int32,
        "full_url": pl.String, "resource_type": pl.String, "resource": pl.String})
    bundles = pl.DataFrame(buf.bundles, schema={
        "bundle_seq": pl.Int64, "file_id": pl.Int64, "line_no": pl.Int32, "entry_count": pl.Int32,
        "entry_types": pl.List(pl.String), "envelope": pl.String})
    quarantine = pl.DataFrame(buf.quarantine, schema={
        "file_id": pl.Int64, "source_file": pl.String, "line_no": pl.Int32, "scope": pl.String,
        "rule_id": pl.String, "message": pl.String, "raw": pl.String, "kind": pl.String})
    batches = pl.DataFrame({"file_id": list(batch_of_file), "batch_id": list(batch_of_file.values())},
                           schema={"file_id": pl.Int64, "batch_id": pl.Int64})
    with transaction(con):
        # Ids continue from the table maxima inside the transaction, so a rolled-back group leaves no gap
        # and a re-run after a crash assigns exactly the ids an uninterrupted run would have. The buffer is
        # already in (file, line, entry) order, so a row's position is its raw id.
        raw_base, bundle_base = con.execute(
            "SELECT (SELECT coalesce(max(raw_id), 0) FROM raw.resource), "
            "(SELECT coalesce(max(bundle_key), 0) FROM raw.bundle)"
        ).fetchone()
        resources = resources.with_row_index("raw_id", offset=raw_base + 1).with_columns(
            pl.col("raw_id").cast(pl.Int64), bundle_key=pl.col("bundle_seq") + bundle_base + 1)
        bundles = bundles.with_columns(bundle_key=pl.col("bundle_seq") + bundle_base + 1).join(
            resources.group_by("bundle_key").agg(first_raw_id=pl.col("raw_id").min(),
                                                 last_raw_id=pl.col("raw_id").max()),
            on="bundle_key", how="left")
        for name, frame in (("resources", resources), ("bundles", bundles), ("quarantine", quarantine),
                            ("batches", batches)):
            con.register(name, frame)
        con.execute(
            """
            INSERT INTO raw.resource
            SELECT r.raw_id, r.file_id, b.batch_id, r.bundle_key, r.line_no, r.entry_index, r.full_url,
                   r.resource_type, r.resource::JSON
            FROM resources r JOIN batches b USING (file_id) ORDER BY r.raw_id
            """
        )
        con.execute(
            """
            INSERT INTO raw.bundle
            SELECT x.bundle_key, x.file_id, b.batch_id, x.line_no, x.entry_count, x.entry_types,
                   x.first_raw_id, x.last_raw_id, x.envelope::JSON
            FROM bundles x JOIN batches b USING (file_id) ORDER BY x.bundle_key
            """
        )
        con.execute(
            """
            INSERT INTO ops.quarantine (batch_id, file_id, source_file, line_no, scope, rule_id, message,
                                        record_count, raw, institution_number)
            SELECT b.batch_id, q.file_id, q.source_file, q.line_no, q.scope, q.rule_id, q.message, 1, q.raw,
                   m.sender
            FROM quarantine q JOIN batches b USING (file_id) JOIN ops.file_manifest m USING (file_id)
            """
        )
        con.execute("UPDATE ops.file_manifest SET parsed = true WHERE file_id IN (SELECT file_id FROM batches)")
    for name in ("resources", "bundles", "quarantine", "batches"):
        con.unregister(name)
    return resources.height


class RawWriteError(RuntimeError):
    """Writing a group of files to raw failed (disk full, I/O error); the group was rolled back."""


def _flush_or_explain(con: duckdb.DuckDBPyConnection, buf: _RawBuffer, batch_of_file: dict[int, int],
                      paths: list[str]) -> int:
    try:
        return _flush(con, buf, batch_of_file)
    except (duckdb.IOException, OSError) as exc:
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        raise RawWriteError(f"could not write {shown} to the warehouse (rolled back; the next run retries): "
                            f"{str(exc).splitlines()[0]}") from exc


def parse_landed_files(con: duckdb.DuckDBPyConnection, inbox: Path, pseudonym_key: bytes | None = None) -> int:
    """Parse every landed, not yet parsed file into raw; returns the number of raw rows written. Identifying
    values are sealed under a key derived from pseudonym_key (default: the configured one)."""
    key = load_settings().pseudonym_key if pseudonym_key is None else pseudonym_key
    pending = con.execute(
        "SELECT file_id, path, kind, size_bytes, batch_id FROM ops.file_manifest WHERE NOT parsed ORDER BY file_id"
    ).fetchall()
    written = 0
    buf, batch_of_file, paths, group_bytes = _RawBuffer(), {}, [], 0
    for file_id, path, kind, size, batch_id in pending:
        _read_file(buf, file_id, inbox, path, kind, key)
        batch_of_file[file_id] = batch_id
        paths.append(path)
        group_bytes += size
        if group_bytes >= GROUP_BYTES:
            written += _flush_or_explain(con, buf, batch_of_file, paths)
            buf, batch_of_file, paths, group_bytes = _RawBuffer(), {}, [], 0
    if batch_of_file:
        written += _flush_or_explain(con, buf, batch_of_file, paths)
    return written
