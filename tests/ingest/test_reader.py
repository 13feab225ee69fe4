"""Bytes → units: every kind of unreadable input becomes a reason, never an exception."""

import gzip
import json

from pipelines.ingest.reader import read_csv_rows, read_json_units

BUNDLE = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient",
                                                                                   "name": [{"text": "牧野 爛漫"}]}}]}


def units(path):
    return list(read_json_units(path))


def test_json_file_is_one_unit(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(BUNDLE, ensure_ascii=False), encoding="utf-8")
    [unit] = units(path)
    assert unit.ok and unit.obj["entry"][0]["resource"]["name"][0]["text"] == "牧野 爛漫"


def test_ndjson_gzip_with_crlf_bom_and_blank_lines(tmp_path):
    line = json.dumps(BUNDLE, ensure_ascii=False).encode()
    path = tmp_path / "a.ndjson.gz"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbf" + line + b"\r\n\r\n" + line + b"\n"))
    result = units(path)
    assert [u.line_no for u in result] == [1, 3] and all(u.ok for u in result)


def test_truncated_line_is_quarantined_alone(tmp_path):
    line = json.dumps(BUNDLE).encode()
    path = tmp_path / "a.ndjson"
    path.write_bytes(line + b"\n" + line[:40] + b"\n" + line + b"\n")
    result = units(path)
    assert [(u.line_no, u.rule_id) for u in result] == [(1, None), (2, "K-JSON"), (3, None)]


def test_shift_jis_is_named_as_such(tmp_path):
    path = tmp_path / "sjis.json"
    path.write_bytes(json.dumps(BUNDLE, ensure_ascii=False).encode("cp932"))
    [unit] = units(path)
    assert unit.rule_id == "K-ENCODING" and "Shift_JIS" in unit.message


def test_corrupt_gzip_and_unsupported_type(tmp_path):
    bad = tmp_path / "a.json.gz"
    bad.write_bytes(gzip.compress(b'{"resourceType": "Bundle"}')[:-8])
    other = tmp_path / "a.xml"
    other.write_text("<Bundle/>")
    assert units(bad)[0].rule_id == "K-GZIP"
    assert units(other)[0].rule_id == "K-FILE-TYPE"


def test_registry_csv_in_shift_jis_with_full_width_digits(tmp_path):
    path = tmp_path / "registry.csv"
    path.write_bytes("institution_number,facility_name,facility_type\n１３１８８１４７９０,牧野記念病院,hospital\n"
                     .encode("cp932"))
    [row] = list(read_csv_rows(path))
    assert row.ok and row.obj == {"institution_number": "１３１８８１４７９０", "facility_name": "牧野記念病院",
                                  "facility_type": "hospital"}
