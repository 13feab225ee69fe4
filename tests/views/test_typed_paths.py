"""The compiler's typed navigation (fhirpath.py, "Typed navigation"): one json_transform per row for the
elements the FHIR model knows, the shape-agnostic JSON path for the rest, and the same rows either way."""

from __future__ import annotations

import json

import duckdb
import pytest

from pipelines.ingest.flatten import STAGING_VIEWS
from pipelines.views import compile_view
from pipelines.views.fhir_model import element

CODING = {"system": "http://medis.or.jp/CodeSystem/master-JLAC10-17digits", "code": "3D046000001906202",
          "display": "HbA1c"}
OBSERVATION = {
    "resourceType": "Observation", "id": "o1", "status": "final",
    "code": {"coding": [CODING], "text": "ＨｂＡ１ｃ"},
    "contained": [
        {"resourceType": "Encounter", "id": "e", "status": "finished",
         "type": [{"coding": [{"code": "AMB"}]}]},
        {"resourceType": "Specimen", "id": "s", "type": {"coding": [{"code": "023"}], "text": "血清"}}],
    "valueQuantity": {"value": 6.20, "unit": "%"},
    "component": [{"code": {"text": "a"}, "valueString": "x"}, {"code": {"text": "b"}}],
}


def rows(view: dict, resources=(OBSERVATION,)) -> tuple[str, list[dict]]:
    con = duckdb.connect()
    con.execute("CREATE TABLE r (resource JSON)")
    con.executemany("INSERT INTO r VALUES (?)", [[json.dumps(x, ensure_ascii=False)] for x in resources])
    sql = compile_view(view, "r")
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return sql, [dict(zip(names, row)) for row in cursor.fetchall()]


def view(*columns, **extra) -> dict:
    return {"resource": "Observation", "select": [{"column": [
        {"name": n, "path": p, **({"type": t} if t else {})} for n, p, t in columns]}], **extra}


def test_the_model_knows_cardinalities():
    assert element("Observation", "category").many and not element("Observation", "code").many
    assert element("CodeableConcept", "coding").type_name == "Coding"
    assert element("Observation", "contained").kind == "resource"
    assert element("Observation", "value") is None  # a choice named without its type: not an element
    assert element("NoSuchResource", "id") is None


def test_known_paths_are_read_from_one_typed_parse():
    jlac10 = "code.coding.where(system = 'http://medis.or.jp/CodeSystem/master-JLAC10-17digits').code.first()"
    sql, got = rows(view(("code", jlac10, "code"), ("text", "code.text", "string")))
    assert got == [{"code": "3D046000001906202", "text": "ＨｂＡ１ｃ"}]
    assert sql.count("json_transform(") == 1 and "json_extract(resource, [" not in sql


def test_an_element_needed_as_json_is_fetched_whole():
    """``code`` as a JSON column needs its full text, not the STRUCT of what the paths navigate."""
    _, got = rows(view(("code", "code", "CodeableConcept"), ("first", "code.coding.code.first()", "code")))
    assert json.loads(got[0]["code"]) == OBSERVATION["code"] and got[0]["first"] == "3D046000001906202"
    _, got = rows(view(("coding", "code.coding.first()", "Coding")))
    assert json.loads(got[0]["coding"]) == CODING


def test_inline_resources_of_different_shapes():
    """Encounter.type is a list, Specimen.type is not: both read correctly from the same contained list."""
    _, got = rows(view(("specimen", "contained.ofType(Specimen).type.text.first()", "string"),
                       ("encounter", "contained.ofType(Encounter).type.coding.code.first()", "code"),
                       ("has_encounter", "contained.ofType(Encounter).exists()", "boolean")))
    assert got == [{"specimen": "血清", "encounter": "AMB", "has_encounter": True}]
    _, alone = rows(view(("specimen", "contained.ofType(Specimen).type.text.first()", "string")))
    assert alone == [{"specimen": "血清"}]


def test_unknown_elements_fall_back_to_the_json_path():
    resource = {**OBSERVATION, "futureElement": {"note": "R6"}}
    sql, got = rows(view(("note", "futureElement.note", "string"), ("status", "status", "code")), [resource])
    assert got == [{"note": "R6", "status": "final"}]
    assert "json_extract(resource, [" in sql and "json_transform(" in sql


def test_foreach_over_typed_items_and_decimals():
    v = {"resource": "Observation", "select": [
        {"column": [{"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"}]},
        {"forEachOrNull": "component", "column": [
            {"name": "part", "path": "code.text", "type": "string"},
            {"name": "text", "path": "value.ofType(string)", "type": "string"}]}]}
    _, got = rows(v)
    assert sorted(got, key=lambda r: r["part"]) == [
        {"value": 6.2, "part": "a", "text": "x"}, {"value": 6.2, "part": "b", "text": None}]
    _, none = rows(v, [{"resourceType": "Observation", "id": "bare"}])
    assert none == [{"value": None, "part": None, "text": None}]


@pytest.mark.parametrize("path", sorted(STAGING_VIEWS.glob("*.json")), ids=lambda p: p.name)
def test_staging_views_compile_without_leftover_markers(path):
    staging = json.loads(path.read_text(encoding="utf-8"))
    sql = compile_view(staging, "r")
    assert "__json_of_node_" not in sql
    duckdb.connect().execute(f"CREATE TABLE r (resource JSON); EXPLAIN {sql}")
