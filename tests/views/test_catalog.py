"""The analysts' view catalog (pipelines/views/catalog.py): discovery, naming, and one clear problem per bad file."""

import json

import pytest

from pipelines.config import DATA_DIR
from pipelines.views.catalog import load_catalog, table_name

GOOD = {"resourceType": "ViewDefinition", "name": "obs_codes", "resource": "Observation",
        "select": [{"column": [{"name": "code", "path": "code.coding.code.first()", "type": "code",
                                "description": "first code"},
                               {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"},
                               {"name": "codes", "path": "code.coding.code", "collection": True}]}]}


def write(folder, name, view):
    path = folder / name
    path.write_text(view if isinstance(view, str) else json.dumps(view, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("raw, name", [
    ("lab_result_flat", "lab_result_flat"),
    ("LabResult", "labresult"),
    ("検査 結果-2024", "v_2024"),  # Japanese words have no ASCII form; the digits remain
    ("Condition by ICD-10", "condition_by_icd_10"),
    ("2024_labs", "v_2024_labs"),
    ("ＬａｂＲｅｓｕｌｔ", "labresult"),  # full-width letters normalise (NFKC)
    ("__x__", "x"),
])
def test_table_name_is_a_valid_dagster_and_duckdb_name(raw, name):
    assert table_name(raw) == name


def test_good_views_are_loaded_with_typed_documented_columns(tmp_path):
    write(tmp_path, "obs.json", GOOD)
    catalog = load_catalog(tmp_path)
    assert catalog.problems == []
    [entry] = catalog.views
    assert entry.name == "obs_codes" and entry.resource_type == "Observation"
    assert [(c.name, c.sql_type) for c in entry.columns] == [
        ("code", "VARCHAR"), ("value", "DOUBLE"), ("codes", "VARCHAR[]")]
    assert entry.columns[0].description == "first code"
    assert entry.columns[1].path == "value.ofType(Quantity).value"


def test_a_view_without_name_is_named_after_its_file(tmp_path):
    write(tmp_path, "My Labs.json", {k: v for k, v in GOOD.items() if k != "name"})
    assert [v.name for v in load_catalog(tmp_path).views] == ["my_labs"]


def test_each_bad_file_is_one_problem_naming_file_and_place(tmp_path):
    write(tmp_path, "good.json", GOOD)
    write(tmp_path, "syntax.json", '{"resource": "Observation", ')
    bad_path = {**GOOD, "name": "bad_path", "select": [{"column": [{"name": "x", "path": "code.coding.where("}]}]}
    write(tmp_path, "bad_path.json", bad_path)
    write(tmp_path, "bad_fn.json", {**GOOD, "name": "bad_fn",
                                    "select": [{"column": [{"name": "x", "path": "code.frobnicate()"}]}]})
    write(tmp_path, "not_view.json", {"resourceType": "Patient", "id": "p"})
    write(tmp_path, "reserved.json", {**GOOD, "name": "reserved",
                                      "select": [{"column": [{"name": "raw_id", "path": "id"}]}]})
    catalog = load_catalog(tmp_path)
    assert [v.name for v in catalog.views] == ["obs_codes"]
    problems = {p.path.name: p.message for p in catalog.problems}
    assert set(problems) == {"syntax.json", "bad_path.json", "bad_fn.json", "not_view.json", "reserved.json"}
    assert "not valid JSON" in problems["syntax.json"]
    assert "bad_path.json: select[0].column[0].path:" in problems["bad_path.json"]
    assert "unknown function 'frobnicate()'" in problems["bad_fn.json"]
    assert "resourceType" in problems["not_view.json"]
    assert "reserved" in problems["reserved.json"]
    assert all("\n" not in m for m in problems.values())


def test_name_clash_skips_every_file_involved(tmp_path):
    write(tmp_path, "a.json", {**GOOD, "name": "Labs"})
    write(tmp_path, "b.json", {**GOOD, "name": "labs"})  # same table: DuckDB names ignore case
    write(tmp_path, "c.json", {**GOOD, "name": "other"})
    catalog = load_catalog(tmp_path)
    assert [v.name for v in catalog.views] == ["other"]
    assert sorted(p.path.name for p in catalog.problems) == ["a.json", "b.json"]
    assert all("views.labs is defined by several files" in p.message for p in catalog.problems)


def test_missing_folder_is_an_empty_catalog(tmp_path):
    catalog = load_catalog(tmp_path / "nope")
    assert catalog.views == [] and catalog.problems == []


def test_shipped_example_views_are_valid():
    catalog = load_catalog(DATA_DIR / "views")
    assert catalog.problems == []
    assert {"condition_by_icd10", "lab_result_flat"} <= {v.name for v in catalog.views}
