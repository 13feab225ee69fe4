"""Hostile and malformed input (hypothesis, bounded): the readers never crash or hang — every input ends as
parsed units or a reason naming a catalogued rule — the streamed NDJSON reader loses no line and invents none,
and a whole inbox of mutated official bundles ingests with counts in = out. Coverage-guided fuzzing of the same
readers: test_atheris.py; size limits: test_limits.py, test_big_line.py."""

import gzip
import json
import random
import time
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.checkups.archive import read_archive
from pipelines.checkups.cda import CheckupFormatError, parse_checkup_document
from pipelines.ingest import reader
from pipelines.ingest.reader import read_csv_rows, read_json_units
from pipelines.rules import RULES
from tests.conftest import EXAMPLES, run_ingest

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _units(path):
    units = list(read_json_units(path))
    assert all(u.ok or (u.rule_id in RULES and u.message) for u in units)
    return units


@FUZZ
@given(data=st.binary(max_size=4096), suffix=st.sampled_from([".json", ".ndjson", ".json.gz", ".ndjson.gz"]))
def test_reader_survives_any_bytes(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("fuzz") / f"f{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") and data[:1] != b"x" else data)
    _units(path)


@FUZZ
@given(data=st.binary(max_size=600).map(lambda b: b.replace(b"\x01", b"\n")), limit=st.integers(1, 40),
       chunk=st.integers(1, 17))
def test_streamed_lines_are_exactly_the_split_lines(data, limit, chunk):
    """The streaming splitter against bytes.split: same lines, same numbers, over-limit lines only counted."""
    chunks = (data[i:i + chunk] for i in range(0, len(data), chunk))
    parts = data.split(b"\n")
    if parts[-1] == b"":
        parts.pop()  # a final newline ends the last line, it does not start another
    expected = [(n, p if len(p) <= limit else None, len(p), b"" if len(p) <= limit else p[:reader.KEPT_PREFIX_BYTES])
                for n, p in enumerate(parts, start=1)]
    assert list(reader._lines(chunks, limit)) == expected


_LINE = st.one_of(
    st.sampled_from([b'{"resourceType":"Consent"}', b'{"resourceType":"Bundle","entry":[{},{},{},{}]}', b"", b"  ",
                     b"\xef\xbb\xbf{}", b"\x00", b"[" * 300 + b"]" * 300, "{\"a\":\"漢字\"}".encode("cp932")]),
    st.binary(max_size=80).filter(lambda b: b"\n" not in b),
)


@FUZZ
@given(lines=st.lists(_LINE, max_size=12), crlf=st.booleans(), gz=st.booleans())
def test_ndjson_loses_no_line_and_invents_none(tmp_path_factory, monkeypatch, lines, crlf, gz):
    monkeypatch.setattr(reader, "MAX_LINE_BYTES", 64)
    monkeypatch.setattr(reader, "MAX_BUNDLE_ENTRIES", 3)
    monkeypatch.setattr(reader, "CHUNK_BYTES", 7)
    content = (b"\r\n" if crlf else b"\n").join(lines)
    path = tmp_path_factory.mktemp("nd") / ("f.ndjson.gz" if gz else "f.ndjson")
    path.write_bytes(gzip.compress(content) if gz else content)
    units = _units(path)
    pieces = content.split(b"\n")
    expected = [n for n, line in enumerate(pieces, start=1) if line.strip() or len(line) > 64]
    assert [u.line_no for u in units] == expected
    assert [u.rule_id == "K-LINE-SIZE" for u in units] == [len(pieces[n - 1]) > 64 for n in expected]


@FUZZ
@given(data=st.binary(max_size=3000), gz=st.booleans())
def test_registry_csv_reader_survives_any_bytes(tmp_path_factory, data, gz):
    path = tmp_path_factory.mktemp("csv") / ("r.csv.gz" if gz else "r.csv")
    path.write_bytes(gzip.compress(data) if gz else data)
    for unit in read_csv_rows(path):
        assert unit.ok or (unit.rule_id in RULES and unit.message)


@FUZZ
@given(text=st.text(max_size=2000))
def test_cda_parser_raises_only_format_errors(text):
    try:
        parse_checkup_document(text)
    except CheckupFormatError:
        pass


@FUZZ
@given(data=st.binary(max_size=4096))
def test_archive_reader_survives_any_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("zip") / "6631111116_01130012_200901150_1.zip"
    path.write_bytes(data)
    result = read_archive(path)  # never raises: random bytes are not a well-formed 特定健診 archive
    assert result.error is not None and result.documents == []


def test_zip_member_traversal_is_refused(tmp_path):
    path = tmp_path / "6631111116_01130012_200901150_1.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../../etc/evil.xml", "<x/>")
        zf.writestr("index.xml", "<index/>")
    assert read_archive(path).error[0] == "K-ZIP"


@pytest.mark.parametrize(("content", "rule"), [
    ("[" * 5000 + "]" * 5000, "K-JSON"),                  # nested thousands deep
    ('{"resourceType": "Bundle\u0000"}', "K-JSON"),       # a raw NUL inside a string
    ('{"resourceType": "Bundle"}\u0000', "K-JSON"),        # trailing NUL
])
def test_shape_limits(tmp_path, content, rule):
    path = tmp_path / "x.json"
    path.write_bytes(content.encode("utf-8"))
    started = time.monotonic()
    [unit] = _units(path)
    assert unit.rule_id == rule and time.monotonic() - started < 2


def test_gzip_bomb_is_refused_without_expanding(tmp_path, monkeypatch):
    from pipelines.ingest import reader

    monkeypatch.setattr(reader, "MAX_DECOMPRESSED_BYTES", 1 << 20)
    path = tmp_path / "bomb.json.gz"
    path.write_bytes(gzip.compress(b" " * (50 << 20)))  # 50 MiB of spaces in ~50 KiB
    [unit] = _units(path)
    assert unit.rule_id == "K-GZIP" and "gzip bomb" in unit.message


def _mutations(data: bytes, rng: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        b = bytearray(data)
        how = rng.randrange(4)
        if how == 0:
            del b[rng.randrange(len(b)):]                       # truncated
        elif how == 1:
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)   # flipped bytes
        elif how == 2:
            i, j = sorted(rng.sample(range(len(b)), 2))
            b[i:j] = b[i:j][::-1]                               # scrambled span
        else:
            i = rng.randrange(len(b))
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))  # junk inserted
        out.append(bytes(b))
    return out


def test_inbox_of_mutated_official_bundles_ingests_with_nothing_lost(examples, inbox, warehouse):
    rng = random.Random(20261126)
    (inbox / "fhir").mkdir()
    names = ["Bundle-Bundle-CLINS-Observations-Example-01.json", "Bundle-Bundle-CLINS-Referral-Example-01.json"]
    # pretty-printed JSON mutates mostly in whitespace; compact it so mutations hit structure and values
    sources = [json.dumps(json.loads((EXAMPLES / n).read_text(encoding="utf-8")), ensure_ascii=False).encode()
               for n in names]
    for i, blob in enumerate(m for src in sources for m in _mutations(src, rng, 40)):
        (inbox / "fhir" / f"mutant{i:03d}.json").write_bytes(blob)
    summary, con = run_ingest(inbox, warehouse)
    assert summary["records_in"] == (summary["records_loaded"] + summary["records_quarantined"]
                                     + summary["records_duplicate"] + summary["records_tombstoned"])
    assert con.execute("SELECT count(*) FROM raw.resource ANTI JOIN ops.record_outcome USING (raw_id)").fetchone() == (0,)
    assert summary["records_quarantined"] > 0 and summary["files_seen"] == 80
