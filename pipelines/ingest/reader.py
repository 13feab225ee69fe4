"""Turns an inbox file's bytes into parsed units (one per JSON document or NDJSON line) or a reason why not.

Nothing here raises on bad input: every failure becomes a `Unit` carrying a rule id and a message, so a
bad file never stops a run.
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

#: Decompressed bytes allowed per file: a zip bomb is rejected, not expanded into memory.
MAX_DECOMPRESSED_BYTES = 2 * 1024**3

JSON_SUFFIXES = (".json", ".ndjson", ".json.gz", ".ndjson.gz")
CSV_SUFFIXES = (".csv", ".csv.gz")


@dataclass(frozen=True)
class Unit:
    line_no: int | None  # 1-based; None when the failure concerns the whole file
    text: bytes | None  # the unit's bytes (kept for quarantine)
    obj: object = None  # parsed JSON when no error
    rule_id: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.rule_id is None


def _file_failure(rule_id: str, message: str, text: bytes | None = None) -> Unit:
    return Unit(line_no=None, text=text, rule_id=rule_id, message=message)


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when its name ends in .gz (bounded by MAX_DECOMPRESSED_BYTES)."""
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
        data = decompressor.decompress(data, MAX_DECOMPRESSED_BYTES)
        if decompressor.unconsumed_tail:
            raise _TooLarge()
        if not decompressor.eof:
            raise gzip.BadGzipFile("gzip stream is truncated")
    return data


class _TooLarge(Exception):
    pass


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


def _parse(line_no: int, text: bytes) -> Unit:
    text = text.removeprefix(codecs.BOM_UTF8)
    reason = _decode_check(text)
    if reason:
        return Unit(line_no, text, rule_id="K-ENCODING", message=reason)
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return Unit(line_no, text, rule_id="K-JSON", message=f"malformed JSON: {exc}")
    return Unit(line_no, text, obj=obj)


def read_json_units(path: Path) -> Iterator[Unit]:
    """`.json`: the file is one JSON document; `.ndjson`: one JSON document per non-empty line."""
    name = path.name
    if not name.endswith(JSON_SUFFIXES):
        yield _file_failure("K-FILE-TYPE", f"unsupported file type {name!r}: expected one of {', '.join(JSON_SUFFIXES)}")
        return
    try:
        data = read_bytes(path)
    except _TooLarge:
        yield _file_failure("K-GZIP", f"decompressed size exceeds {MAX_DECOMPRESSED_BYTES} bytes (gzip bomb?)")
        return
    except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
        yield _file_failure("K-GZIP", f"corrupt gzip stream: {exc}")
        return
    except OSError as exc:
        yield _file_failure("K-FILE-READ", f"cannot read file: {exc.strerror or exc}")
        return
    if ".ndjson" in name:
        for line_no, line in enumerate(data.split(b"\n"), start=1):
            if line.strip():
                yield _parse(line_no, line.rstrip(b"\r"))
    elif not data.strip():
        yield _file_failure("K-JSON", "file is empty", data)
    else:
        yield _parse(1, data)


def read_csv_rows(path: Path) -> Iterator[Unit]:
    """Registry CSV rows as dicts (header → value). UTF-8 (with or without BOM) or Shift_JIS/CP932."""
    if not path.name.endswith(CSV_SUFFIXES):
        yield _file_failure("K-FILE-TYPE", f"unsupported file type {path.name!r}: expected .csv")
        return
    try:
        data = read_bytes(path)
    except (_TooLarge, gzip.BadGzipFile, zlib.error, EOFError) as exc:
        yield _file_failure("K-GZIP", f"corrupt or oversized gzip stream: {exc}")
        return
    except OSError as exc:
        yield _file_failure("K-FILE-READ", f"cannot read file: {exc.strerror or exc}")
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
    for row in reader:
        line_no = reader.line_num
        if None in row:  # more fields than the header
            yield Unit(line_no, None, rule_id="K-FACILITY", message="row has more fields than the header")
            continue
        yield Unit(line_no, orjson.dumps(row), obj=row)
