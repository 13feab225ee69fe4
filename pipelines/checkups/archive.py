"""特定健診 XML archives: `<sender>_<receiver>_<yyyymmdd><n>_<kubun>.zip` holding index.xml (交換用基本情報),
summary.xml (集計情報) and one CDA document per person.

    read_archive(path) -> ArchiveRead(documents=[(member name, CDA XML text)], error=None | (rule id, message))

The archive is read in memory through `zipfile` and never extracted, so member names cannot write anywhere;
a name with `..`, an absolute path or a drive is still rejected (K-ZIP) because no legitimate sender makes
one. Zip bombs are bounded before and while reading: the central directory's size (from the end record,
before zipfile lists it), member count, each member's declared and actual size, the total, and the
compression ratio. Any archive-level problem rejects the whole archive (`error`), and then
`documents` is empty; person documents are parsed one by one afterwards (cda.parse_checkup_document).

Which members are person documents: every `.xml` member except index.xml, summary.xml and members under a
`CLAIMS/` folder (決済情報). The folder layout inside the archive is not confirmed (domain_spec §3.1), so
members are matched by name wherever they sit. Both index.xml `totalRecordCount` and summary.xml
`totalSubjectCount` must equal the number of person documents held (K-CHECKUP-COUNT).
"""

import re
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePosixPath

from pipelines.checkups.cda import CheckupFormatError, parse_xml

NAME_RE = re.compile(
    r"^(?P<sender>[0-9]{10})_(?P<receiver>[0-9]{8}|[0-9]{10})_(?P<day>[0-9]{8})(?P<split>[0-9])_(?P<kubun>[0-9])"
    r"\.zip$", re.IGNORECASE)
_DECLARED_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_CODEC_ALIASES = {"windows-31j": "cp932", "x-sjis": "shift_jis", "sjis": "shift_jis"}


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds that stop a zip bomb before memory does (a person's document is tens of kB, compressing ~10×:
    generated archives measure at most 16 kB a member and 6.7:1). max_total_bytes and max_ratio match the
    gzip limits in pipelines/ingest/reader.py (512 MiB, 200:1)."""

    max_members: int = 20_000
    max_member_bytes: int = 5 * 1024 * 1024
    max_total_bytes: int = 512 * 1024 * 1024
    max_ratio: float = 200.0


#: bytes allowed per central-directory record (46 fixed + name, extra field and comment) before listing
_DIRECTORY_RECORD_BYTES = 1024


@dataclass
class ArchiveRead:
    documents: list[tuple[str, str]] = field(default_factory=list)  # (zip member name, CDA XML text)
    error: tuple[str, str] | None = None  # (rule id, message) when the whole archive is rejected
    sender: str | None = None  # 提出元機関番号 from the file name (10 digits)
    receiver: str | None = None  # 提出先 (保険者番号 8 digits, or a 10-digit 機関番号)
    record_count: int | None = None  # index.xml totalRecordCount


class _Reject(Exception):
    def __init__(self, rule_id: str, message: str):
        self.rule_id, self.message = rule_id, message


def _check_name(name: str) -> re.Match:
    match = NAME_RE.match(name)
    if not match:
        raise _Reject("K-CHECKUP-NAME", f"{name!r} is not <提出元10桁>_<提出先>_<提出日8桁><回数1桁>_<実施区分>.zip")
    day = match["day"]
    try:
        date(int(day[:4]), int(day[4:6]), int(day[6:]))
    except ValueError:
        raise _Reject("K-CHECKUP-NAME", f"{name!r}: 提出年月日 {day} is not a date") from None
    return match


def _check_member(info: zipfile.ZipInfo, limits: ArchiveLimits) -> None:
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts or "\x00" in name:
        raise _Reject("K-ZIP", f"member name {name!r} is absolute or leaves the archive")
    if info.flag_bits & 0x1:
        raise _Reject("K-ZIP", f"member {name!r} is encrypted")
    if info.file_size > limits.max_member_bytes:
        raise _Reject("K-ZIP", f"member {name!r} unpacks to {info.file_size} bytes (limit {limits.max_member_bytes})")
    if info.file_size > limits.max_ratio * max(info.compress_size, 1) and info.file_size > 1024 * 1024:
        raise _Reject("K-ZIP", f"member {name!r} compresses {info.file_size / max(info.compress_size, 1):.0f}:1 "
                               "(a zip bomb, not XML)")


def _check_directory(path: Path, limits: ArchiveLimits) -> None:
    """Refuse, from the end record alone, a central directory too big to list: zipfile builds a ZipInfo for
    every record (~0.5 kB each) before any per-member check can run. Folder entries count there too, hence
    the factor 2; the exact file count is checked once listed."""
    with path.open("rb") as fh:
        end = zipfile._EndRecData(fh)  # zipfile's own end-record reader (private; unchanged since Python 2.6)
    if end is None:
        return  # not a zip: zipfile.ZipFile says so
    records, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    if records > 2 * limits.max_members or size > 2 * limits.max_members * _DIRECTORY_RECORD_BYTES:
        raise _Reject("K-ZIP", f"central directory lists {records} entries in {size} bytes "
                               f"(limit {limits.max_members} members)")


def _read_members(zf: zipfile.ZipFile, limits: ArchiveLimits) -> dict[str, bytes]:
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > limits.max_members:
        raise _Reject("K-ZIP", f"{len(infos)} members (limit {limits.max_members})")
    for info in infos:
        _check_member(info, limits)
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_total_bytes:
        raise _Reject("K-ZIP", f"members unpack to {declared} bytes (limit {limits.max_total_bytes})")
    members: dict[str, bytes] = {}
    total = 0
    for info in infos:
        if not info.filename.lower().endswith(".xml"):
            continue  # XSD copies and other attachments are not read
        # Read one byte past the limit: a header that understates the size cannot smuggle more in.
        with zf.open(info) as fh:
            data = fh.read(limits.max_member_bytes + 1)
        total += len(data)
        if len(data) > limits.max_member_bytes or total > limits.max_total_bytes:
            raise _Reject("K-ZIP", f"member {info.filename!r} unpacks beyond its declared size (a zip bomb)")
        members[info.filename] = data
    return members


def _decode(name: str, data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    declared = _DECLARED_ENCODING.match(data[:200])
    encoding = declared.group(1).decode("ascii").lower() if declared else "utf-8"
    encoding = _CODEC_ALIASES.get(encoding, encoding)
    try:
        return data.decode(encoding)
    except LookupError:
        raise _Reject("K-ENCODING", f"{name}: unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as exc:
        raise _Reject("K-ENCODING", f"{name}: not valid {encoding} at byte {exc.start}") from None


def _count(name: str, text: str, element: str) -> tuple[int, str | None]:
    """The integer `value` of `element` (any namespace) in index.xml / summary.xml, and the sender id if any."""
    try:
        root = parse_xml(text, name)
    except CheckupFormatError as exc:
        rule = "K-XML-UNSAFE" if exc.rule_id == "K-XML-UNSAFE" else "K-CHECKUP-COUNT"
        raise _Reject(rule, exc.message) from None
    found = sender = None
    for node in root.iter():
        local = node.tag.rsplit("}", 1)[-1]
        if local == element and found is None:
            found = node.get("value")
        elif local == "sender":
            ident = next((n for n in node.iter() if n.tag.rsplit("}", 1)[-1] == "id"), None)
            sender = ident.get("extension") if ident is not None else None
    if found is None or not found.strip().isdigit():
        raise _Reject("K-CHECKUP-COUNT", f"{name} has no {element} value (got {found!r})")
    return int(found), sender


def _by_basename(members: dict[str, bytes], basename: str) -> str:
    names = [n for n in members if PurePosixPath(n.replace("\\", "/")).name.lower() == basename]
    if len(names) != 1:
        raise _Reject("K-CHECKUP-COUNT", f"{basename} {'missing' if not names else 'appears more than once'}: "
                                         "the archive's counts cannot be checked")
    return names[0]


def _is_person_document(name: str, special: set[str]) -> bool:
    parts = [p.lower() for p in PurePosixPath(name.replace("\\", "/")).parts]
    return name not in special and "claims" not in parts[:-1]


def read_archive(path: Path, limits: ArchiveLimits = ArchiveLimits()) -> ArchiveRead:
    """Read one archive without extracting it; see the module docstring for what is rejected and why."""
    path = Path(path)
    read = ArchiveRead()
    try:
        match = _check_name(path.name)
        read.sender, read.receiver = match["sender"], match["receiver"]
        try:
            _check_directory(path, limits)
            with zipfile.ZipFile(path) as zf:
                members = _read_members(zf, limits)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
            raise _Reject("K-ZIP", f"not a readable zip archive: {exc}") from None
        except OSError as exc:
            raise _Reject("K-ZIP", f"cannot read the archive: {exc.strerror or exc}") from None
        index, summary = _by_basename(members, "index.xml"), _by_basename(members, "summary.xml")
        texts = {name: _decode(name, data) for name, data in members.items()}
        records, index_sender = _count(index, texts[index], "totalRecordCount")
        subjects, _ = _count(summary, texts[summary], "totalSubjectCount")
        if index_sender and index_sender.strip() != read.sender:
            raise _Reject("K-CHECKUP-NAME", f"file name says sender {read.sender}, index.xml says {index_sender}")
        documents = sorted((n, t) for n, t in texts.items() if _is_person_document(n, {index, summary}))
        read.record_count = records
        if records != len(documents) or subjects != len(documents):
            raise _Reject("K-CHECKUP-COUNT", f"index.xml totalRecordCount {records} and summary.xml "
                                             f"totalSubjectCount {subjects}, but the archive holds "
                                             f"{len(documents)} person documents")
        read.documents = documents
    except _Reject as reject:
        read.documents, read.error = [], (reject.rule_id, reject.message)
    return read
