"""atheris (libFuzzer, coverage-guided) harness for the hostile-input readers.

    python -m tests.security.atheris_harness TARGET CORPUS_DIR [...] [libFuzzer flags, e.g. -max_total_time=5]
    python -m tests.security.atheris_harness TARGET --seeds DIR        only write TARGET's seed inputs into DIR

(from the repository root). A CORPUS_DIR that is missing or empty is first filled with the target's seeds;
the files each input is written to live beside it, in .work-TARGET.

TARGET: `json` (reader.read_json_units over .json/.ndjson/.gz), `csv` (reader.read_csv_rows), `cda`
(cda.parse_checkup_document), `archive` (archive.read_archive). Every input must end as parsed units or a
reason naming a rule of pipelines/rules.py; anything else — an exception the reader does not turn into a
reason, a broken invariant (below), a file descriptor left open, a hang (-timeout) or runaway memory
(-rss_limit_mb) — is a crash, and libFuzzer exits non-zero with the input saved.

The readers' limits are lowered (module constants, ArchiveLimits) so that inputs of a few kB reach every
limit branch: the code paths are the production ones, only the thresholds are small.

Invariant of the json target (nothing lost, nothing invented): unless the file fails as a whole, the units'
line numbers are exactly the non-blank lines of the content (a line over the limit counts, blank or not),
and a .json file gives exactly one unit.
"""

import gzip
import io
import os
import sys
import warnings
import zipfile
from datetime import date
from pathlib import Path

import atheris
import orjson

with atheris.instrument_imports(include=["pipelines"]):
    from pipelines.checkups import archive, cda
    from pipelines.ingest import reader
    from pipelines.rules import RULES

LINE_LIMIT = 1024
reader.MAX_LINE_BYTES = reader.MAX_DOCUMENT_BYTES = LINE_LIMIT
reader.MAX_BUNDLE_ENTRIES = 3
reader.MAX_DECOMPRESSED_BYTES = 64 * 1024
reader.RATIO_FLOOR_BYTES = 1024
reader.MAX_CSV_BYTES = 4096
reader.CHUNK_BYTES = 61  # lines and documents cross chunk boundaries all the time
reader.KEPT_PREFIX_BYTES = 16
LIMITS = archive.ArchiveLimits(max_members=8, max_member_bytes=8192, max_total_bytes=24 * 1024, max_ratio=100.0)

JSON_SUFFIXES = (".json", ".ndjson", ".json.gz", ".ndjson.gz")
SENDER, RECEIVER, DAY = "1312345678", "01130012", date(2025, 4, 15)
#: member names the structured archive mode can add: legitimate, misplaced and hostile
EXTRA_NAMES = ["DATA/extra.xml", "CLAIMS/cc1.xml", "XSD/x.xsd", "index.xml", "summary.xml", "../evil.xml",
               "/etc/evil.xml", "C:/evil.xml", "DATA\\..\\..\\evil.xml", "DATA/\x00.xml", "DATA/深い/名前.xml"]

#: where inputs are written as files: beside the corpus (set in main), so the caller's temp dir holds it all
WORK = Path(".")
warnings.filterwarnings("ignore", "Duplicate name", UserWarning)  # duplicate members are an input, not news
_fds_at_start: list[int] = []


class InvariantBroken(AssertionError):
    pass


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise InvariantBroken(what)


def _check_reason(unit) -> None:
    _check(unit.ok or (unit.rule_id in RULES and bool(unit.message)), f"unit without a known rule: {unit}")


# --- json -----------------------------------------------------------------------------------------------
def fuzz_json(data: bytes) -> None:
    if not data:
        return
    suffix = JSON_SUFFIXES[data[0] % 4]
    content = data[1:]
    if data[0] & 8 and content:  # bit 3: nest the rest 2 × data[1] more array levels (depth is a dimension)
        content = b"[" * 2 * content[0] + content[1:] + b"]" * 2 * content[0]
    # bit 2: write the body raw even for .gz, so corrupt and truncated streams are fuzzed too
    compressed = suffix.endswith(".gz") and not data[0] & 4
    path = WORK / f"f{suffix}"
    path.write_bytes(gzip.compress(content, mtime=0) if compressed else content)
    units = list(reader.read_json_units(path))
    for unit in units:
        _check_reason(unit)
        if unit.ok:
            orjson.dumps(unit.obj)  # raw.py writes every unit back: what the reader accepts must survive that
    if not units or units[0].line_no is None or (suffix.endswith(".gz") and not compressed):
        return
    if ".ndjson" in suffix:
        expected = [n for n, line in enumerate(content.split(b"\n"), start=1)
                    if line.strip() or len(line) > LINE_LIMIT]
        _check([u.line_no for u in units] == expected, f"lines {expected} came out as {[u.line_no for u in units]}")
    else:
        _check(len(units) == 1, f"a .json file gave {len(units)} units")


# --- csv ------------------------------------------------------------------------------------------------
def fuzz_csv(data: bytes) -> None:
    path = WORK / "registry.csv"
    path.write_bytes(data)
    for unit in reader.read_csv_rows(path):
        _check_reason(unit)
        _check(not unit.ok or isinstance(unit.obj, dict), "a loaded row is not a dict")


# --- cda ------------------------------------------------------------------------------------------------
def fuzz_cda(data: bytes) -> None:
    try:
        rows = cda.parse_checkup_document(data.decode("utf-8", errors="replace"))
    except cda.CheckupFormatError as exc:
        _check(exc.rule_id in RULES and bool(exc.message), f"format error without a known rule: {exc}")
        return
    _check(isinstance(rows, list) and all(isinstance(r, dict) for r in rows), "rows are not a list of dicts")


# --- archive --------------------------------------------------------------------------------------------
def base_members(work: Path) -> list[tuple[str, bytes]]:
    """index.xml, summary.xml and two generated people's CDA documents (the generator's truth file goes to
    `work`, so nothing is left in /tmp)."""
    from pipelines.generate.checkup_cda import cda_document, index_xml, summary_xml
    from pipelines.generate.checkup_plan import plan_checkups
    from pipelines.generate.facilities import make_facilities
    from pipelines.generate.patients import make_patients

    start, end = date(2025, 1, 1), date(2026, 10, 31)
    facilities = make_facilities(8, 3, start, end)
    patients = make_patients(150, 3, facilities, work / "patients.csv")
    people = [(f"DATA/{c.document_id}.xml", cda_document(c)) for c in plan_checkups(3, patients, facilities, start, end)[:2]]
    members = [("index.xml", index_xml(SENDER, RECEIVER, DAY, 2)), ("summary.xml", summary_xml(2, 2000)), *people]
    return [(name, text.encode("utf-8")) for name, text in members]


BASE: list[tuple[str, bytes]] = []  # set in main, once WORK is known


def _zip(members: list[tuple[str, bytes]], compression: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        for name, content in members:
            zf.writestr(zipfile.ZipInfo(name, date_time=(2025, 4, 15, 0, 0, 0)), content)
    return buffer.getvalue()


def archive_bytes(data: bytes) -> bytes:
    """data[0] picks how the input becomes an archive: its own bytes as the zip file (mode 3), or the base
    archive (index, summary, two people) with data[3:] spliced into, or replacing, or added as one member."""
    if len(data) < 3 or data[0] % 4 == 3:
        return data[1:]
    mode, which, where, payload = data[0] % 4, data[1], data[2], data[3:]
    members = list(BASE)
    compression = zipfile.ZIP_STORED if data[0] & 4 else zipfile.ZIP_DEFLATED
    if which >= 240:  # an extra member with a chosen name
        members.append((EXTRA_NAMES[which % len(EXTRA_NAMES)], payload))
        return _zip(members, compression)
    name, content = members[which % len(members)]
    at = where * len(content) // 256
    if mode == 0:
        content = content[:at] + payload + content[at + len(payload):]
    elif mode == 1:
        content = content[:at] + payload + content[at:]
    else:
        content = payload
    members[which % len(members)] = (name, content)
    return _zip(members, compression)


def fuzz_archive(data: bytes) -> None:
    path = WORK / f"{SENDER}_{RECEIVER}_{DAY:%Y%m%d}1_1.zip"
    path.write_bytes(archive_bytes(data))
    read = archive.read_archive(path, LIMITS)  # must not raise
    if read.error:
        _check(read.error[0] in RULES and bool(read.error[1]) and read.documents == [], f"bad rejection {read.error}")
    else:
        _check(read.record_count == len(read.documents), "documents differ from index.xml's count")


# --- seeds ----------------------------------------------------------------------------------------------
def seeds(target: str) -> list[bytes]:
    """A few valid inputs per target, so the fuzzer starts from the real formats, not from nothing."""
    bundle = (b'{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:1","resource":'
              b'{"resourceType":"Patient","name":[{"text":"\xe7\x89\xa7\xe9\x87\x8e"}]}}]}')
    if target == "json":
        lines = bundle + b"\r\n\n" + b"\xef\xbb\xbf" + bundle + b"\n" + b'{"entry":[1,2,3,4]}' + b"\n"
        return [bytes([0]) + bundle, bytes([1]) + lines, bytes([3]) + lines, bytes([2]) + bundle,
                bytes([8, 100]) + bundle]
    if target == "csv":
        return [b"institution_number,facility_name,facility_type\n1318814790,x,hospital\n",
                "institution_number,facility_name\n１３１８８１４７９０,牧野記念病院\n".encode("cp932")]
    if target == "cda":
        return [BASE[2][1], BASE[0][1]]
    with_zip = _zip(BASE, zipfile.ZIP_DEFLATED)
    return [bytes([3]) + with_zip, bytes([0, 2, 128]) + b"<observation/>", bytes([1, 0, 200]) + b"999",
            bytes([2, 245]) + b"<x/>"]


def write_seeds(target: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for n, seed in enumerate(seeds(target)):
        (out / f"seed{n}").write_bytes(seed)


TARGETS = {"json": fuzz_json, "csv": fuzz_csv, "cda": fuzz_cda, "archive": fuzz_archive}


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def run_one(target):
    def test_one_input(data: bytes) -> None:
        if not _fds_at_start:
            _fds_at_start.append(_open_fds())
        TARGETS[target](data)
        _check(_open_fds() <= _fds_at_start[0], f"file descriptors leaked: {_fds_at_start[0]} → {_open_fds()}")

    return test_one_input


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} {{{','.join(TARGETS)}}} (--seeds DIR | CORPUS_DIR… -flags)")
    target = argv[1]
    seeds_only = argv[2:3] == ["--seeds"]
    corpus = [Path(a) for a in argv[3 if seeds_only else 2:] if not a.startswith("-")]
    if not corpus:
        sys.exit("give a CORPUS_DIR (created and seeded when missing or empty)")
    global WORK
    WORK = corpus[0].parent / f".work-{target}"  # libFuzzer ends the process without atexit: no temp dir
    WORK.mkdir(parents=True, exist_ok=True)
    BASE[:] = base_members(WORK)
    if seeds_only or not (corpus[0].is_dir() and any(corpus[0].iterdir())):
        write_seeds(target, corpus[0])  # a new corpus starts from the valid inputs
    if seeds_only:
        return
    atheris.Setup([argv[0], *argv[2:]], run_one(target))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
