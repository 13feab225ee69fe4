"""Turns an inbox file's bytes into parsed units (one per JSON document or NDJSON line) or a reason why not.

Nothing here raises on bad input: every failure becomes a `Unit` carrying a rule id and a message, so a
bad file never stops a run. Files are streamed in CHUNK_BYTES pieces (gunzipped on the fly), so what the
reader holds is bounded by the limits below, never by the file's size.

Limits (module constants; tests and the fuzz harness lower them with monkeypatch). Sizes measured on the
official JP-CLINS examples (largest 86 kB, eCheckup) and a generated inbox (longest NDJSON line 48 kB,
registry CSV 92 bytes a row, gzip ratios 1.6–15.6:1):

- MAX_LINE_BYTES 64 MiB — one NDJSON line or one .json document (K-LINE-SIZE / K-FILE-SIZE). ~750× the
  largest example; the only legitimate way to get near it is a document bundle carrying base64 attachments
  (210 添付情報, 230 PDF sections), and 64 MiB still holds ~48 MiB of them. A longer line is counted to its
  newline and skipped: at most 64 MiB of it is ever held (a 1 GiB line: 66 MiB peak heap for the whole
  ingest, tests/security/test_big_line.py). What a line costs once parsed (orjson, measured): 427 MiB for 64 MiB of real Observation
  entries, 1.9 GiB for a hostile `[{},{},…]` — the worst case per worker, inside a 24 GiB box with 2 workers.
- MAX_BUNDLE_ENTRIES 100,000 — a Bundle with more entries is quarantined whole (K-BUNDLE-ENTRIES) and makes
  no per-entry rows. A JP-CLINS collection is one patient's resources of one type; by estimate (not a
  measured figure) even a dialysis patient's six months of lab results is a few thousand Observations, so
  this leaves ~30× headroom; past it each entry would cost a raw row and a structure validation for nothing.
- MAX_JSON_DEPTH 254 levels — orjson's own write limit (K-JSON); the official examples and a generated inbox
  nest at most 11 deep.
- MAX_DECOMPRESSED_BYTES 512 MiB per .gz file, and MAX_GZIP_RATIO 200:1 once more than RATIO_FLOOR_BYTES
  came out (K-GZIP, "gzip bomb"). raw.py buffers a whole file's rows before it flushes, so the file's content
  is what one file can cost there; 512 MiB matches the checkup archive's total (archive.ArchiveLimits).
  Real data compresses 1.6–16:1 per generated file and 30:1 for a month of access log NDJSON; deflate
  cannot exceed ~1032:1. 200:1 (the archive's member ratio too) keeps ~7× headroom over real data and stops
  a bomb within 200× its compressed size, long before the absolute cap.
- MAX_CSV_BYTES 64 MiB — the registry CSV is read whole (its encoding is decided for the whole file): the
  whole country's ~181,000 hospitals and clinics at 92 bytes a row is ~17 MiB (K-FILE-SIZE).
"""

import codecs
import csv
import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

MAX_LINE_BYTES = 64 * 1024**2
MAX_DOCUMENT_BYTES = MAX_LINE_BYTES
MAX_BUNDLE_ENTRIES = 100_000
MAX_JSON_DEPTH = 254  # what orjson.dumps can write back (see _too_deep)
MAX_DECOMPRESSED_BYTES = 512 * 1024**2
MAX_GZIP_RATIO = 200
RATIO_FLOOR_BYTES = 16 * 1024**2
MAX_CSV_BYTES = 64 * 1024**2
#: how much of an oversized unit is kept in the quarantine row, so the sender can see what it was
KEPT_PREFIX_BYTES = 1024
CHUNK_BYTES = 1024**2

JSON_SUFFIXES = (".json", ".ndjson", ".json.gz", ".ndjson.gz")
CSV_SUFFIXES = (".csv", ".csv.gz")


@dataclass(frozen=True)
class Unit:
    line_no: int | None  # 1-based; None when the failure concerns the whole file
    text: bytes | None  # the unit's bytes (kept for quarantine; only a prefix for oversized units)
    obj: object = None  # parsed JSON when no error
    rule_id: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.rule_id is None


def _file_failure(rule_id: str, message: str, text: bytes | None = None) -> Unit:
    return Unit(line_no=None, text=text, rule_id=rule_id, message=message)


class _TooLarge(Exception):
    """The gzip stream expands beyond MAX_DECOMPRESSED_BYTES or MAX_GZIP_RATIO; str() says which."""


def _chunks(path: Path) -> Iterator[bytes]:
    """The file's content in pieces of at most CHUNK_BYTES, gunzipped when the name ends in .gz.

    Raises _TooLarge for a gzip bomb (checked as it inflates, so a bomb is never expanded in full),
    gzip.BadGzipFile / zlib.error / EOFError for a corrupt or truncated stream, OSError when unreadable.
    """
    with path.open("rb") as raw:
        if not path.name.endswith(".gz"):
            while chunk := raw.read(CHUNK_BYTES):
                yield chunk
            return
        inflated = 0
        with gzip.GzipFile(fileobj=raw) as stream:
            while chunk := stream.read(CHUNK_BYTES):
                inflated += len(chunk)
                if inflated > MAX_DECOMPRESSED_BYTES:
                    raise _TooLarge(f"decompressed size exceeds {MAX_DECOMPRESSED_BYTES} bytes (gzip bomb?)")
                if inflated > RATIO_FLOOR_BYTES and inflated > MAX_GZIP_RATIO * raw.tell():
                    raise _TooLarge(f"expands more than {MAX_GZIP_RATIO}:1 ({inflated} bytes out of "
                                    f"{raw.tell()} read; gzip bomb?)")
                yield chunk


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when its name ends in .gz (bounded like every read here)."""
    return b"".join(_chunks(path))


def _gzip_failure(path: Path) -> Unit | None:
    """Inflate a .gz once without keeping it: why it cannot be read, or None. Run before an NDJSON file's
    lines are handed out, so a bomb or a truncated stream rejects the whole file, not its tail only."""
    try:
        for _ in _chunks(path):
            pass
    except (_TooLarge, gzip.BadGzipFile, zlib.error, EOFError, OSError) as exc:
        return _read_failure(exc)
    return None


def _read_failure(exc: Exception) -> Unit:
    if isinstance(exc, _TooLarge):
        return _file_failure("K-GZIP", str(exc))
    if isinstance(exc, (gzip.BadGzipFile, zlib.error, EOFError)):
        return _file_failure("K-GZIP", f"corrupt gzip stream: {exc}")
    return _file_failure("K-FILE-READ", f"cannot read file: {getattr(exc, 'strerror', None) or exc}")


def _head(pieces: list[bytes]) -> bytes:
    """The first KEPT_PREFIX_BYTES of the concatenated pieces, without concatenating them."""
    return b"".join(p[:KEPT_PREFIX_BYTES] for p in pieces)[:KEPT_PREFIX_BYTES]


def _lines(chunks: Iterator[bytes], limit: int) -> Iterator[tuple[int, bytes | None, int, bytes]]:
    """(line number, the line or None when longer than `limit`, its size, its first KEPT_PREFIX_BYTES) per
    `\\n`-separated line. A line over the limit is counted to its end and dropped, never joined."""
    line_no, pieces, size, prefix = 1, [], 0, b""
    for chunk in chunks:
        parts = chunk.split(b"\n")
        last = len(parts) - 1
        for index, part in enumerate(parts):
            if pieces is not None:
                if size + len(part) <= limit:
                    pieces.append(part)
                else:
                    prefix = _head([*pieces, part])
                    pieces = None
            elif len(prefix) < KEPT_PREFIX_BYTES:  # only when the limit is below the prefix (tests)
                prefix += part[:KEPT_PREFIX_BYTES - len(prefix)]
            size += len(part)
            if index < last:  # a newline ends this line
                yield line_no, None if pieces is None else b"".join(pieces), size, prefix
                line_no, pieces, size, prefix = line_no + 1, [], 0, b""
    if size:
        yield line_no, None if pieces is None else b"".join(pieces), size, prefix


def _decode_check(text: bytes) -> str | None:
    """Why `text` is not UTF-8 JSON text, or None. FHIR JSON must be UTF-8 (a BOM is tolerated)."""
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as exc:
        hint = ""
        try:
            text.decode("cp932")
            hint = " (it decodes as Shift_JIS/CP932: re-encode as UTF-8)"
        except UnicodeDecodeError:
            pass
        return f"invalid UTF-8 at byte {exc.start}{hint}"
    return None


def _too_deep(obj: object) -> bool:
    """orjson reads 1024 levels but writes only MAX_JSON_DEPTH, and raw.py writes every entry back: a
    document between the two would crash the run there. One orjson.dumps costs ~13% of the parse (measured;
    counting brackets first costs more than that)."""
    try:
        orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return True
    return False


def _parse(line_no: int, text: bytes) -> Unit:
    text = text.removeprefix(codecs.BOM_UTF8)
    try:
        # orjson rejects invalid UTF-8 itself, so text it parses needs no separate decode pass; the
        # encoding is diagnosed only for text it refused.
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        reason = _decode_check(text)
        if reason:
            return Unit(line_no, text, rule_id="K-ENCODING", message=reason)
        return Unit(line_no, text, rule_id="K-JSON", message=f"malformed JSON: {exc}")
    if len(text) > 2 * MAX_JSON_DEPTH and _too_deep(obj):  # shorter text cannot nest that deep
        return Unit(line_no, text, rule_id="K-JSON", message=f"JSON nested deeper than {MAX_JSON_DEPTH} levels "
                                                             "(JP-CLINS bundles nest about 11)")
    entries = obj.get("entry") if isinstance(obj, dict) and obj.get("resourceType") == "Bundle" else None
    if isinstance(entries, list) and len(entries) > MAX_BUNDLE_ENTRIES:
        return Unit(line_no, text[:KEPT_PREFIX_BYTES], rule_id="K-BUNDLE-ENTRIES",
                    message=f"bundle has {len(entries)} entries (limit {MAX_BUNDLE_ENTRIES}); "
                            "quarantined whole, no entry was read")
    return Unit(line_no, text, obj=obj)


def _ndjson_units(path: Path) -> Iterator[Unit]:
    for line_no, line, size, prefix in _lines(_chunks(path), MAX_LINE_BYTES):
        if line is None:
            yield Unit(line_no, prefix, rule_id="K-LINE-SIZE",
                       message=f"line {line_no} is {size} bytes (limit {MAX_LINE_BYTES}); skipped unread")
        elif line.strip():
            yield _parse(line_no, line.rstrip(b"\r"))


def _document_unit(path: Path) -> Unit:
    pieces, size = [], 0
    for chunk in _chunks(path):
        size += len(chunk)
        if size > MAX_DOCUMENT_BYTES:
            return _file_failure("K-FILE-SIZE", f"JSON document exceeds {MAX_DOCUMENT_BYTES} bytes; not read "
                                                "(send one bundle per .json, or NDJSON)", _head([*pieces, chunk]))
        pieces.append(chunk)
    data = b"".join(pieces)
    if not data.strip():
        return _file_failure("K-JSON", "file is empty", data)
    return _parse(1, data)


def read_json_units(path: Path) -> Iterator[Unit]:
    """`.json`: the file is one JSON document; `.ndjson`: one JSON document per non-empty line."""
    name = path.name
    if not name.endswith(JSON_SUFFIXES):
        yield _file_failure("K-FILE-TYPE", f"unsupported file type {name!r}: expected one of {', '.join(JSON_SUFFIXES)}")
        return
    if ".ndjson" not in name:
        try:
            yield _document_unit(path)
        except (_TooLarge, gzip.BadGzipFile, zlib.error, EOFError, OSError) as exc:
            yield _read_failure(exc)
        return
    if name.endswith(".gz") and (failure := _gzip_failure(path)):
        yield failure
        return
    try:
        yield from _ndjson_units(path)
    except (_TooLarge, gzip.BadGzipFile, zlib.error, EOFError, OSError) as exc:
        # Only when the file changes or the disk fails between the check above and this read: the lines
        # already handed out stay where they went, the rest of the file is named here.
        yield _read_failure(exc)


def _csv_bytes(path: Path) -> bytes | None:
    """The whole CSV content, or None past MAX_CSV_BYTES (read no further than one chunk beyond)."""
    pieces, size = [], 0
    for chunk in _chunks(path):
        size += len(chunk)
        if size > MAX_CSV_BYTES:
            return None
        pieces.append(chunk)
    return b"".join(pieces)


def read_csv_rows(path: Path) -> Iterator[Unit]:
    """Registry CSV rows as dicts (header → value). UTF-8 (with or without BOM) or Shift_JIS/CP932."""
    if not path.name.endswith(CSV_SUFFIXES):
        yield _file_failure("K-FILE-TYPE", f"unsupported file type {path.name!r}: expected .csv")
        return
    try:
        data = _csv_bytes(path)
    except (_TooLarge, gzip.BadGzipFile, zlib.error, EOFError, OSError) as exc:
        yield _read_failure(exc)
        return
    if data is None:
        yield _file_failure("K-FILE-SIZE", f"registry CSV exceeds {MAX_CSV_BYTES} bytes; not read")
        return
    for encoding in ("utf-8-sig", "cp932"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        yield _file_failure("K-ENCODING", "registry CSV is neither UTF-8 nor Shift_JIS/CP932", data[:4096])
        return
    reader = csv.DictReader(io.StringIO(text, newline=""))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The csv module refuses a field over its limit (131,072 characters) and drops the rest of that
            # line; the next call reads on from the following line.
            line_no = reader.reader.line_num  # DictReader's own count moves only on success
            yield Unit(line_no, None, rule_id="K-LINE-SIZE", message=f"registry row at line {line_no}: {exc}")
            continue
        line_no = reader.line_num
        if None in row:  # more fields than the header
            yield Unit(line_no, None, rule_id="K-FACILITY", message="row has more fields than the header")
            continue
        yield Unit(line_no, orjson.dumps(row), obj=row)
