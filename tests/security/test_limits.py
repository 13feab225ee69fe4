"""Size and shape limits (issue 8): every hostile input ends as a quarantine row naming its rule — through a
real ingest where it is cheap — and nothing else in the inbox is lost (counts in = out). The thresholds and
why they are what they are: pipelines/ingest/reader.py and pipelines/checkups/archive.py."""

import gzip
import io
import json
import time
import zipfile

from pipelines.checkups import archive
from pipelines.ingest import reader
from pipelines.ingest.reader import read_csv_rows, read_json_units
from tests.conftest import run_ingest
from tests.security.hostile_inputs import (
    OBSERVATIONS,
    compact,
    entries,
    gzip_bomb,
    million_entry_bundle,
    registry_with_huge_field,
    shape_files,
)


def assert_nothing_lost(summary: dict, con) -> None:
    assert summary["records_in"] == (summary["records_loaded"] + summary["records_quarantined"]
                                     + summary["records_duplicate"] + summary["records_tombstoned"])
    assert con.execute("SELECT count(*) FROM raw.resource ANTI JOIN ops.record_outcome USING (raw_id)").fetchone() == (0,)


def outcome_by_file(con) -> dict[str, tuple[int, list]]:
    """file name → (raw rows read from it, [(line, rule)] of its file/line quarantine rows)."""
    rows = con.execute(
        """SELECT regexp_extract(m.path, '[^/]+$'),
                  (SELECT count(*) FROM raw.resource r WHERE r.file_id = m.file_id),
                  list((q.line_no, q.rule_id) ORDER BY q.line_no) FILTER (WHERE q.rule_id IS NOT NULL)
           FROM ops.file_manifest m
           LEFT JOIN ops.quarantine q ON q.file_id = m.file_id AND q.scope IN ('file', 'line')
           GROUP BY ALL"""
    ).fetchall()
    return {name: (raw, [tuple(x.values()) if isinstance(x, dict) else tuple(x) for x in quarantined or []])
            for name, raw, quarantined in rows}


def test_encodings_and_shapes_through_a_real_ingest(examples, inbox, warehouse):
    files = shape_files()
    (inbox / "fhir").mkdir()
    for name, (content, _, _) in files.items():
        (inbox / "fhir" / name).write_bytes(content)
    summary, con = run_ingest(inbox, warehouse)
    assert_nothing_lost(summary, con)
    found = outcome_by_file(con)
    assert {name: found[name] for name in files} == {name: (raw, q) for name, (_, raw, q) in files.items()}
    messages = dict(con.execute("SELECT regexp_extract(source_file, '[^/]+$'), message FROM ops.quarantine "
                                "WHERE scope IN ('file', 'line')").fetchall())
    assert "Shift_JIS" in messages["shift-jis.json"] and "nested deeper than 254" in messages["nested-400.json"]


def test_a_bundle_with_a_million_entries_is_quarantined_whole(examples, inbox, warehouse):
    (inbox / "fhir").mkdir()
    million = million_entry_bundle()
    assert len(million) < reader.MAX_DOCUMENT_BYTES  # the entries cap, not the size cap, is what stops it
    (inbox / "fhir" / "million.json").write_bytes(million)
    (inbox / "fhir" / "ok.json").write_bytes(compact(OBSERVATIONS))
    started = time.monotonic()
    summary, con = run_ingest(inbox, warehouse)
    assert time.monotonic() - started < 60  # measured ~4 s on 2 busy cores
    assert_nothing_lost(summary, con)
    found = outcome_by_file(con)
    assert found["million.json"] == (0, [(1, "K-BUNDLE-ENTRIES")])  # no per-entry rows at all
    assert found["ok.json"][0] == entries(OBSERVATIONS)
    message, kept = con.execute("SELECT message, length(raw) FROM ops.quarantine WHERE rule_id = 'K-BUNDLE-ENTRIES'").fetchone()
    # only a prefix is kept (sealed by raw.py's vault when it is on: a token of ~1.4× its text), not 44 MB
    assert "1000000 entries (limit 100000)" in message and kept < 2 * reader.KEPT_PREFIX_BYTES


def test_entries_cap_boundary(tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "MAX_BUNDLE_ENTRIES", 3)
    path = tmp_path / "b.ndjson"
    lines = [json.dumps({"resourceType": rt, "entry": [{}] * n}).encode() for rt, n in
             [("Bundle", 3), ("Bundle", 4), ("Consent", 9)]]
    path.write_bytes(b"\n".join(lines))
    assert [(u.line_no, u.rule_id) for u in read_json_units(path)] == [(1, None), (2, "K-BUNDLE-ENTRIES"), (3, None)]


def test_oversized_document_and_csv_are_file_quarantines(inbox, warehouse, monkeypatch):
    monkeypatch.setattr(reader, "MAX_DOCUMENT_BYTES", 10_000)
    monkeypatch.setattr(reader, "MAX_CSV_BYTES", 10_000)
    monkeypatch.setattr(reader, "CHUNK_BYTES", 4096)
    (inbox / "fhir").mkdir()
    (inbox / "facilities").mkdir()
    (inbox / "fhir" / "big.json").write_bytes(b'{"resourceType":"Bundle","note":"' + b"x" * 20_000 + b'"}')
    (inbox / "fhir" / "big.json.gz").write_bytes(gzip.compress(b'{"resourceType":"Bundle","note":"' + b"y" * 20_000 + b'"}'))
    header = "institution_number,facility_name,prefecture_code,facility_type\n"
    (inbox / "facilities" / "registry.csv").write_text(header + "1318814790,牧野記念病院,13,hospital\n" * 300,
                                                       encoding="utf-8")
    summary, con = run_ingest(inbox, warehouse)
    assert_nothing_lost(summary, con)
    rows = con.execute("SELECT regexp_extract(source_file, '[^/]+$'), scope, rule_id, length(raw), message "
                       "FROM ops.quarantine ORDER BY 1").fetchall()
    assert [r[:3] for r in rows] == [("big.json", "file", "K-FILE-SIZE"), ("big.json.gz", "file", "K-FILE-SIZE"),
                                     ("registry.csv", "file", "K-FILE-SIZE")]
    assert all("10000 bytes" in r[4] for r in rows) and reader.KEPT_PREFIX_BYTES <= rows[0][3] < 2 * reader.KEPT_PREFIX_BYTES


def test_gzip_bomb_at_the_default_limits_rejects_the_whole_file(tmp_path):
    path = tmp_path / "bomb.ndjson.gz"
    path.write_bytes(gzip_bomb(40))  # a valid line, then 40 MiB of spaces
    assert path.stat().st_size < 100_000
    started = time.monotonic()
    units = list(read_json_units(path))
    assert [(u.line_no, u.rule_id) for u in units] == [(None, "K-GZIP")]  # the valid first line is not loaded
    assert "200:1" in units[0].message and "gzip bomb" in units[0].message and time.monotonic() - started < 5


def test_ordinary_compression_ratios_pass(tmp_path):
    """Access-log NDJSON compresses ~30:1 (a generated month measured 30.2:1): above the ratio floor it still
    loads, line by line."""
    line = (b'{"resourceType":"AuditEvent","id":"%08d","recorded":"2026-01-01T09:00:00+09:00","agent":[{"who":'
            b'{"identifier":{"value":"1318814790"}},"requestor":true}],"entity":[{"what":{"identifier":'
            b'{"value":"00012345:%06d:1:01"}}}]}\n')
    data = b"".join(line % (i, i * 7919 % 999983) for i in range(75_000))
    path = tmp_path / "access.ndjson.gz"
    path.write_bytes(gzip.compress(data))
    assert len(data) > reader.RATIO_FLOOR_BYTES and len(data) / path.stat().st_size > 25
    units = list(read_json_units(path))
    assert len(units) == 75_000 and all(u.ok for u in units)


def test_a_csv_field_over_the_csv_modules_limit_is_one_row_not_a_crash(tmp_path):
    path = tmp_path / "registry.csv"
    path.write_text(registry_with_huge_field(), encoding="utf-8")
    assert [(u.line_no, u.rule_id, (u.obj or {}).get("institution_number")) for u in read_csv_rows(path)] == [
        (2, None, "1318814790"), (3, "K-LINE-SIZE", None), (4, None, "3318814790")]


def test_zip_central_directory_too_big_is_refused_before_listing(tmp_path, monkeypatch):
    path = tmp_path / "6631111116_01130012_200901150_1.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for n in range(50):
            zf.writestr(f"DATA/{n}.xml", b"<x/>")
    path.write_bytes(buffer.getvalue())

    def no_listing(*args, **kwargs):
        raise AssertionError("zipfile listed the central directory")

    monkeypatch.setattr(archive.zipfile, "ZipFile", no_listing)
    read = archive.read_archive(path, archive.ArchiveLimits(max_members=10))
    assert read.error[0] == "K-ZIP" and "central directory lists 50 entries" in read.error[1]


def test_zip_member_ratio_matches_the_gzip_ratio(tmp_path):
    path = tmp_path / "6631111116_01130012_200901150_1.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("DATA/bomb.xml", b"<a>" + b" " * (4 << 20) + b"</a>")  # 4 MiB at ~1000:1 (limit 200:1)
    read = archive.read_archive(path)
    assert read.error[0] == "K-ZIP" and "zip bomb" in read.error[1]
