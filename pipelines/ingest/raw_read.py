"""Reading one group of landed files into raw rows, in memory: the CPU-heavy half of the raw step (parse, seal,
serialise; and in fast structure mode the schema check of pipelines/fhir/structure_schema.py on each resource
while it is parsed anyway). Nothing here touches the warehouse, so groups can be read in worker processes
(pipelines/ingest/raw.py writes them, in order).

Rows are verbatim but for identifying values, sealed before anything leaves this module
(pipelines/ingest/vault.py): a resource's names, identifiers, phones and addresses, a 特定健診 CDA document
whole, and the raw text of an unreadable line or file whole."""

import zipfile
from array import array
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path

import orjson
import pyarrow as pa

from pipelines.fhir import structure_schema
from pipelines.ingest.reader import Unit, read_csv_rows, read_json_units
from pipelines.ingest.vault import seal, seal_resource

#: kind of inbox file → the resourceType every line must have (fhir files hold Bundles)
LINE_RESOURCE = {"fhir": "Bundle", "consent": "Consent", "access": "AuditEvent"}
LINE_RULE = {"fhir": "K-NOT-BUNDLE", "consent": "K-CONSENT", "access": "K-AUDIT"}
FACILITY_ROW = "FacilityRegistryRow"
#: one person's 特定健診 CDA document from an archive: {"member": zip member name, "cda": XML text}
CHECKUP_DOCUMENT = "CheckupDocument"

RESOURCE_COLUMNS = ["file_id", "line_no", "bundle_seq", "entry_index", "full_url", "resource_type", "resource",
                    "structure_checked", "structure_problem"]
BUNDLE_COLUMNS = ["bundle_seq", "file_id", "line_no", "entry_count", "entry_types", "envelope"]


@dataclass(frozen=True)
class LandedFile:
    """One row of ops.file_manifest still to parse."""

    file_id: int
    path: str
    kind: str
    size_bytes: int
    batch_id: int


@dataclass
class RawBuffer:
    """Column lists for one group's raw rows (resources in file, line, entry order: a row's position is its
    raw id's offset), its quarantined units and the files it read."""

    resources: dict[str, list] = field(default_factory=lambda: {k: [] for k in RESOURCE_COLUMNS})
    bundles: dict[str, list] = field(default_factory=lambda: {k: [] for k in BUNDLE_COLUMNS})
    quarantine: list[dict] = field(default_factory=list)
    files: list[LandedFile] = field(default_factory=list)

    def add_resource(self, file_id, line_no, bundle_seq, entry_index, full_url, resource_type, text: bytes,
                     checked: bool = False, problem: str | None = None):
        r = self.resources
        r["file_id"].append(file_id)
        r["line_no"].append(line_no)
        r["bundle_seq"].append(bundle_seq)
        r["entry_index"].append(entry_index)
        r["full_url"].append(full_url)
        r["resource_type"].append(resource_type)
        r["resource"].append(text)
        r["structure_checked"].append(checked)
        r["structure_problem"].append(problem)


def _decode(text: bytes | None) -> str | None:
    return None if text is None else text.decode("utf-8", errors="replace")


def _add_fhir(buf: RawBuffer, file_id: int, line_no, bundle_seq, entry_index, full_url, resource_type,
              payload: object, key: bytes, precheck: bool, is_resource: bool = True) -> None:
    # The schema check sees the resource as sent: it runs before sealing rewrites identifying values. An
    # entry without a resource is kept as it came (and fails the check).
    problem = structure_schema.structure_problem(payload) if precheck else None
    kept = seal_resource(payload, key) if is_resource else payload
    buf.add_resource(file_id, line_no, bundle_seq, entry_index, full_url, resource_type,
                     orjson.dumps(kept), precheck, problem)


def _add_bundle(buf: RawBuffer, file_id: int, unit: Unit, key: bytes, precheck: bool) -> None:
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
        _add_fhir(buf, file_id, unit.line_no, seq, index, full_url if isinstance(full_url, str) else None, rtype,
                  resource if isinstance(resource, dict) else entry, key, precheck, isinstance(resource, dict))
    envelope = {k: v for k, v in bundle.items() if k != "entry"}
    b = buf.bundles
    b["bundle_seq"].append(seq)
    b["file_id"].append(file_id)
    b["line_no"].append(unit.line_no)
    b["entry_count"].append(len(entries))
    b["entry_types"].append(types)
    b["envelope"].append(orjson.dumps(envelope).decode())


def _quarantine_unit(buf: RawBuffer, file_id: int, path: str, kind: str, unit: Unit, key: bytes) -> None:
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


def _read_archive(buf: RawBuffer, file_id: int, full: Path, path: str, key: bytes) -> None:
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
                         orjson.dumps({"member": member, "cda": seal(xml, key)}))


def _read_file(buf: RawBuffer, landed: LandedFile, inbox: Path, key: bytes, precheck: bool) -> None:
    file_id, path, kind = landed.file_id, landed.path, landed.kind
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
                buf.add_resource(file_id, unit.line_no, None, None, None, FACILITY_ROW, unit.text)
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
            _add_bundle(buf, file_id, unit, key, precheck)
        else:
            _add_fhir(buf, file_id, unit.line_no, None, None, None, expected, unit.obj, key, precheck)


def unpacked_bytes(path: Path, size_bytes: int) -> int:
    """About how many bytes of text a landed file becomes (what a group of files costs in memory): a ZIP's
    members as its directory states them, a .gz's size as its trailer states it (modulo 4 GiB), otherwise the
    file's size. Unreadable files count at their size; reading them reports why."""
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                return max(size_bytes, sum(member.file_size for member in archive.infolist()))
        if path.suffix == ".gz" and size_bytes >= 4:
            with path.open("rb") as file:
                file.seek(-4, 2)
                return max(size_bytes, int.from_bytes(file.read(4), "little"))
    except (OSError, zipfile.BadZipFile, ValueError):
        pass
    return size_bytes


def read_group(files: list[LandedFile], inbox: Path, key: bytes, precheck: bool) -> "RawGroup":
    """Every file of the group read into one buffer; `precheck` runs the fast structure check on each FHIR
    resource (fast structure mode) so the structure step need not parse it again."""
    buf = RawBuffer(files=list(files))
    for landed in files:
        _read_file(buf, landed, inbox, key, precheck)
    return RawGroup.of(buf)


#: Arrow types of the group's tables (the raw step numbers and writes them as they are)
_RESOURCE_TYPES = {"file_id": pa.int64(), "batch_id": pa.int64(), "line_no": pa.int32(), "bundle_seq": pa.int64(),
                   "entry_index": pa.int32(), "full_url": pa.large_string(), "resource_type": pa.large_string(),
                   "structure_checked": pa.bool_(), "structure_problem": pa.large_string()}
_BUNDLE_TYPES = {"bundle_seq": pa.int64(), "file_id": pa.int64(), "line_no": pa.int32(), "entry_count": pa.int32(),
                 "entry_types": pa.list_(pa.large_string()), "envelope": pa.large_string()}
_QUARANTINE_TYPES = {"file_id": pa.int64(), "source_file": pa.large_string(), "line_no": pa.int32(),
                     "scope": pa.large_string(), "rule_id": pa.large_string(), "message": pa.large_string(),
                     "raw": pa.large_string(), "kind": pa.large_string()}


@dataclass(frozen=True)
class RawGroup:
    """One read group as Arrow tables, built where it was read (a pool worker): the writing process only numbers
    and writes them, in SQL, without a Python object per row. `resources` is in file, line, entry order, so row
    `pos` gets raw id base + 1 + pos; each resource row carries its file's batch id."""

    resources: pa.Table  # pos, _RESOURCE_TYPES, resource (the JSON text)
    bundles: pa.Table  # _BUNDLE_TYPES
    quarantine: pa.Table  # _QUARANTINE_TYPES
    files: list[LandedFile]

    @classmethod
    def of(cls, buf: RawBuffer) -> "RawGroup":
        """The buffer's lists become columns one by one, each list dropped once converted (the worker's peak is
        the group's lists or its columns, not both)."""
        batch_of = {f.file_id: f.batch_id for f in buf.files}
        columns = buf.resources
        columns["batch_id"] = [batch_of[file_id] for file_id in columns["file_id"]]
        texts = PackedTexts.pack(columns.pop("resource"))
        resources = pa.table({"pos": pa.array(range(texts.count), pa.int64()),
                              **{name: pa.array(columns.pop(name), kind) for name, kind in _RESOURCE_TYPES.items()},
                              "resource": texts.arrow()})
        bundles = pa.table({name: pa.array(buf.bundles[name], kind) for name, kind in _BUNDLE_TYPES.items()})
        quarantine = pa.table({name: pa.array([q[name] for q in buf.quarantine], kind)
                               for name, kind in _QUARANTINE_TYPES.items()})
        return cls(resources, bundles, quarantine, buf.files)


@dataclass(frozen=True)
class PackedTexts:
    """UTF-8 texts as one buffer and their offsets (Arrow's string layout): a group's ~14k resource texts become
    a column without a Python string per row."""

    data: bytes
    offsets: bytes  # int64 offsets into data, one more than there are texts
    count: int

    @classmethod
    def pack(cls, texts: list[bytes]) -> "PackedTexts":
        offsets = array("q", [0])
        offsets.extend(accumulate(map(len, texts)))
        return cls(b"".join(texts), offsets.tobytes(), len(texts))

    def arrow(self) -> pa.Array:
        return pa.Array.from_buffers(pa.large_string(), self.count,
                                     [None, pa.py_buffer(self.offsets), pa.py_buffer(self.data)])
