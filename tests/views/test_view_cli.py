"""`karte view run` / `karte view list` as an analyst meets them: formats, sources, exit codes, one-line errors."""

import csv
import gzip
import io
import json

import duckdb
import pytest

from pipelines.cli import main
from tests.conftest import load_example, run_ingest, write_bundles

VIEW = {"resourceType": "ViewDefinition", "name": "labs", "resource": "Observation",
        "select": [{"column": [
            {"name": "id", "path": "getResourceKey()", "type": "string"},
            {"name": "name", "path": "code.text", "type": "string"},
            {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"},
            {"name": "codes", "path": "code.coding.code", "type": "code", "collection": True},
            {"name": "final", "path": "status = 'final'", "type": "boolean"}]}]}
OBS = [
    {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "ＨｂＡ１ｃ",
     "coding": [{"system": "http://medis.or.jp/CodeSystem/master-JLAC10-17digits", "code": "3D046000001906202"}]},
     "valueQuantity": {"value": 6.2, "unit": "%"}},
    {"resourceType": "Observation", "id": "o2", "status": "preliminary", "code": {"text": "尿蛋白"},
     "valueString": "（±）"},
]
PATIENT = {"resourceType": "Patient", "id": "p1"}


@pytest.fixture
def files(tmp_path):
    view = tmp_path / "labs.json"
    view.write_text(json.dumps(VIEW, ensure_ascii=False), encoding="utf-8")
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": OBS[1]}]}
    lines = [json.dumps(r, ensure_ascii=False) for r in (PATIENT, OBS[0], bundle)]
    ndjson = tmp_path / "resources.ndjson"
    ndjson.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    return view, ndjson


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_rows_with_bundle_entries_expanded(capsys, files):
    view, ndjson = files
    code, out, err = run(capsys, "view", "run", view, "--input", ndjson)
    assert code == 0, err
    rows = json.loads(out)
    assert rows == [
        {"id": "o1", "name": "ＨｂＡ１ｃ", "value": 6.2, "codes": ["3D046000001906202"], "final": True},
        {"id": "o2", "name": "尿蛋白", "value": None, "codes": [], "final": False},
    ]


def test_csv_has_a_header_and_json_text_for_collections(capsys, files, tmp_path):
    view, ndjson = files
    out_file = tmp_path / "rows.csv"
    code, out, err = run(capsys, "view", "run", view, "--input", ndjson, "--format", "csv", "--out", out_file)
    assert code == 0 and out == "", err
    rows = list(csv.reader(io.StringIO(out_file.read_text(encoding="utf-8"))))
    assert rows[0] == ["id", "name", "value", "codes", "final"]
    assert rows[1] == ["o1", "ＨｂＡ１ｃ", "6.2", '["3D046000001906202"]', "true"]
    assert rows[2] == ["o2", "尿蛋白", "", "[]", "false"]


def test_parquet_needs_out_and_keeps_types(capsys, files, tmp_path):
    view, ndjson = files
    code, _, err = run(capsys, "view", "run", view, "--input", ndjson, "--format", "parquet")
    assert code == 2 and "--out" in err
    target = tmp_path / "rows.parquet"
    code, _, err = run(capsys, "view", "run", view, "--input", ndjson, "--format", "parquet", "--out", target)
    assert code == 0, err
    assert duckdb.sql(f"SELECT id, value, codes FROM '{target}' ORDER BY id").fetchall() == [
        ("o1", 6.2, ["3D046000001906202"]), ("o2", None, [])]


def test_gzip_and_single_pretty_printed_document(capsys, files, tmp_path):
    view, _ = files
    gz = tmp_path / "one.ndjson.gz"
    gz.write_bytes(gzip.compress(json.dumps(OBS[0], indent=2, ensure_ascii=False).encode()))
    code, out, err = run(capsys, "view", "run", view, "--input", gz)
    assert code == 0, err
    assert [r["id"] for r in json.loads(out)] == ["o1"]


@pytest.mark.parametrize("content, expected", [
    ('{"resourceType": "Patient"}\n{"resourceType": \n', ":2: not valid JSON"),
    ('{"resourceType": "Patient"}\n[1, 2]\n', ":2: not a FHIR resource"),
])
def test_bad_input_line_is_a_one_line_error_naming_the_line(capsys, files, tmp_path, content, expected):
    view, _ = files
    bad = tmp_path / "bad.ndjson"
    bad.write_text(content, encoding="utf-8")
    code, out, err = run(capsys, "view", "run", view, "--input", bad)
    assert code == 1 and out == ""
    assert expected in err and err.strip().count("\n") == 0


def test_invalid_view_names_file_and_place(capsys, files, tmp_path):
    _, ndjson = files
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**VIEW, "select": [{"column": [{"name": "x", "path": "code.("}]}]}))
    code, _, err = run(capsys, "view", "run", broken, "--input", ndjson)
    assert code == 1 and "broken.json: select[0].column[0].path:" in err and err.strip().count("\n") == 0


def test_missing_files_and_conflicting_sources(capsys, files, tmp_path):
    view, ndjson = files
    code, _, err = run(capsys, "view", "run", tmp_path / "nope.json", "--input", ndjson)
    assert code == 1 and "nope.json" in err
    code, _, err = run(capsys, "view", "run", view, "--input", tmp_path / "nope.ndjson")
    assert code == 1 and "nope.ndjson: no such file" in err
    code, _, err = run(capsys, "view", "run", view, "--warehouse", tmp_path / "nope.duckdb")
    assert code == 1 and "does not exist" in err
    with pytest.raises(SystemExit) as exit_:
        main(["view", "run", str(view), "--input", str(ndjson), "--warehouse", "w.duckdb"])
    assert exit_.value.code == 2


def test_query_time_failure_is_one_line(capsys, files, tmp_path):
    _, ndjson = files
    many = tmp_path / "many.json"
    many.write_text(json.dumps({"resource": "Observation", "select": [{"column": [
        {"name": "c", "path": "code.coding.code | id"}]}]}))
    code, _, err = run(capsys, "view", "run", many, "--input", ndjson)
    assert code == 1 and "returned more than one value" in err and err.strip().count("\n") == 0


def test_over_the_warehouse_read_only(capsys, examples, inbox, tmp_path, files):
    view, _ = files
    write_bundles(inbox, {"obs.json": load_example("Bundle-Bundle-CLINS-Observations-Example-01.json")})
    warehouse = tmp_path / "w.duckdb"
    _, con = run_ingest(inbox, warehouse)
    con.close()
    before = warehouse.stat().st_mtime_ns
    code, out, err = run(capsys, "view", "run", view, "--warehouse", warehouse)
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 4 and {r["name"] for r in rows} >= {"アルブミン", "カリウム"}
    assert warehouse.stat().st_mtime_ns == before


def test_list_reports_good_and_skipped_views(capsys, tmp_path):
    folder = tmp_path / "views"
    folder.mkdir()
    (folder / "labs.json").write_text(json.dumps(VIEW))
    (folder / "bad.json").write_text("{")
    code, out, _ = run(capsys, "view", "list", "--dir", folder)
    assert code == 1
    assert "views.labs" in out and "bad.json: not valid JSON" in out
    code, out, _ = run(capsys, "view", "list", "--dir", folder, "--json")
    listing = json.loads(out)
    assert [v["table"] for v in listing["views"]] == ["views.labs"] and len(listing["problems"]) == 1
    (folder / "bad.json").unlink()
    code, _, _ = run(capsys, "view", "list", "--dir", folder)
    assert code == 0
