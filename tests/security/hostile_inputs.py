"""Hostile inbox files, shared by the limit tests and the closing-note run (closing_note.py): each builder
returns the bytes, and where it matters what a correct ingest must make of them.

The FHIR builders start from the official JP-CLINS examples in ../shared (tests skip without them)."""

import gzip
import io
import json
import zipfile
from pathlib import Path

from tests.conftest import load_example

OBSERVATIONS = "Bundle-Bundle-CLINS-Observations-Example-01.json"
REFERRAL = "Bundle-Bundle-CLINS-Referral-Example-01.json"  # all of its text encodes in Shift_JIS
GIB = 1024**3
ARCHIVE = "6631111116_01130012_200901150_1.zip"  # a well-formed 特定健診 archive name


def compact(name: str) -> bytes:
    return json.dumps(load_example(name), ensure_ascii=False).encode("utf-8")


def entries(name: str) -> int:
    return len(load_example(name)["entry"])


def nested(depth: int) -> bytes:
    """An official bundle whose first Observation carries an extension nested `depth` levels."""
    bundle = load_example(OBSERVATIONS)
    bundle["entry"][1]["resource"]["extension"] = "DEEP"
    node = b'{"url":"u","extension":[' * depth + b'{"url":"u","valueString":"leaf"}' + b"]}" * depth
    return json.dumps(bundle, ensure_ascii=False).encode().replace(b'"DEEP"', b"[" + node + b"]")


def shape_files() -> dict[str, tuple[bytes, int, list[tuple[int | None, str]]]]:
    """fhir/ file name → (content, raw rows it must give, [(line, rule)] of its file/line quarantine rows)."""
    obs, ref = compact(OBSERVATIONS), compact(REFERRAL)
    n_obs, n_ref = entries(OBSERVATIONS), entries(REFERRAL)
    return {
        "bom.json": (b"\xef\xbb\xbf" + obs, n_obs, []),
        "crlf.ndjson": (b"\xef\xbb\xbf" + obs + b"\r\n\r\n" + ref + b"\r\n", n_obs + n_ref, []),
        "nul-in-string.json": (obs.replace(b'"Bundle"', b'"Bun\x00dle"', 1), 0, [(1, "K-JSON")]),
        "nul-trailing.json": (obs + b"\x00", 0, [(1, "K-JSON")]),
        "nul-only.ndjson": (b"\x00" * 4096 + b"\n" + ref + b"\n", n_ref, [(1, "K-JSON")]),
        "invalid-utf8.json": (obs.replace(b'"collection"', b'"coll\xffection"', 1), 0, [(1, "K-ENCODING")]),
        "shift-jis.json": (json.dumps(load_example(REFERRAL), ensure_ascii=False).encode("cp932"), 0,
                           [(1, "K-ENCODING")]),
        "nested-5000.json": (b"[" * 5000 + b"]" * 5000, 0, [(1, "K-JSON")]),
        "nested-400.json": (nested(400), 0, [(1, "K-JSON")]),  # parses, but would crash writing it back
        "nested-100.json": (nested(100), n_obs, []),           # deep, but within the limit: read
        "empty.json": (b" \r\n", 0, [(None, "K-JSON")]),
        "two-gzip-members.ndjson.gz": (gzip.compress(obs + b"\n") + gzip.compress(ref + b"\n"), n_obs + n_ref, []),
        "truncated.ndjson.gz": (gzip.compress(obs + b"\n" + ref + b"\n")[:-40], 0, [(None, "K-GZIP")]),
    }


def write_big_line(path: Path, after: bytes, size: int = GIB) -> int:
    """A first NDJSON line of just over `size` bytes (written in microseconds: a hole reads as NUL bytes),
    then `after` as line 2. Returns the first line's size."""
    head = b'{"resourceType":"Bundle","id":"'
    with path.open("wb") as fh:
        fh.write(head)
        fh.seek(size, 1)
        fh.write(b'"}\n' + after + b"\n")
    return len(head) + size + 2


def million_entry_bundle(n: int = 10**6) -> bytes:
    """A Bundle of `n` small entries (~44 MB for 10^6: under the document cap, so the entries cap stops it)."""
    entry = b'{"resource":{"resourceType":"Observation"}}'
    return b'{"resourceType":"Bundle","type":"collection","entry":[' + b",".join([entry] * n) + b"]}"


def gzip_bomb(mib: int = 40) -> bytes:
    """A valid NDJSON line, then `mib` MiB of spaces: ~1000:1, about 40 kB on disk."""
    return gzip.compress(b'{"resourceType":"Consent"}\n' + b" " * (mib << 20), compresslevel=9)


def registry_with_huge_field() -> str:
    """Registry CSV whose line 3 has a 200,000-character field (over the csv module's 131,072)."""
    return "institution_number,facility_name\n1318814790,a\n2,\"" + "x" * 200_000 + "\"\n3318814790,c\n"


def zip_of(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members:
            zf.writestr(name, content)
    return buffer.getvalue()


def hostile_archives() -> dict[str, bytes]:
    """checkups/ file name → archive bytes that must each be rejected whole (K-ZIP / K-CHECKUP-NAME)."""
    stem = ARCHIVE.removesuffix(".zip")
    return {
        ARCHIVE: zip_of([("index.xml", b"<index/>"), ("DATA/bomb.xml", b"<a>" + b" " * (50 << 20) + b"</a>")]),
        stem[:-1] + "2.zip": zip_of([("../../etc/evil.xml", b"<x/>"), ("index.xml", b"<index/>")]),
        stem[:-1] + "3.zip": zip_of([(f"DATA/{n}.xml", b"<x/>") for n in range(50_000)]),  # > 2 × 20,000 records
        "not-a-checkup-name.zip": zip_of([("index.xml", b"<index/>")]),
    }
