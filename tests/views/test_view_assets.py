"""Analyst views as Dagster assets: what they read (only records that reached core), how they are rebuilt,
documented and guarded, and that a broken view file never breaks the code location."""

import json
import warnings

import dagster as dg
import pytest

from assets.views import ViewCatalogWarning, build_view_assets
from pipelines.resources import KarteWarehouse
from pipelines.views.catalog import load_catalog
from pipelines.views.materialize import build_view_table
from pipelines.warehouse import connect, raw_lake
from tests.conftest import load_example, run_ingest, write_bundles

LABS = {"resourceType": "ViewDefinition", "name": "labs", "title": "Labs", "resource": "Observation",
        "description": "one row per Observation",
        "select": [{"column": [
            {"name": "id", "path": "getResourceKey()", "type": "string"},
            {"name": "code", "path": "code.text", "type": "string", "description": "検査名"},
            {"name": "codes", "path": "code.coding.code", "type": "code", "collection": True}]}]}
OBSERVATIONS = "Bundle-Bundle-CLINS-Observations-Example-01.json"


def write_views(folder, views: dict) -> None:
    folder.mkdir(exist_ok=True)
    for name, view in views.items():
        text = view if isinstance(view, str) else json.dumps(view, ensure_ascii=False)
        (folder / name).write_text(text, encoding="utf-8")


def test_only_records_that_reached_core_are_read(tmp_path):
    """loaded and tombstoned records are rows; quarantined and duplicate ones are not."""
    con = connect(tmp_path / "w.duckdb")
    outcomes = {1: "loaded", 2: "quarantined", 3: "tombstoned", 4: "duplicate", 5: None}
    resources = [json.dumps({"resourceType": "Observation", "id": f"o{raw_id}", "code": {"text": f"検査{raw_id}"}},
                            ensure_ascii=False) for raw_id in outcomes]
    raw_lake.append(con, """SELECT raw_id, 1 AS file_id, 1 AS batch_id, NULL AS bundle_key, raw_id AS line_no,
                                   NULL AS entry_index, NULL AS full_url, 'Observation' AS resource_type, resource
                            FROM (SELECT unnest(range(1, len(?::VARCHAR[]) + 1)) AS raw_id, unnest(?::VARCHAR[]) AS resource)""",
                    [resources, resources])
    for raw_id, outcome in outcomes.items():
        if outcome:
            con.execute("INSERT INTO ops.record_outcome VALUES (?, 1, ?, NULL)", [raw_id, outcome])
    [entry] = _catalog(tmp_path, {"labs.json": LABS}).views
    assert build_view_table(con, entry) == 2
    rows = con.execute("SELECT raw_id, id, code, codes FROM views.labs ORDER BY raw_id").fetchall()
    assert rows == [(1, "o1", "検査1", []), (3, "o3", "検査3", [])]
    # rebuilt whole: a second run replaces, never appends
    assert build_view_table(con, entry) == 2
    comments = dict(con.execute("SELECT column_name, comment FROM duckdb_columns() "
                                "WHERE schema_name = 'views' AND table_name = 'labs'").fetchall())
    assert comments["code"] == "検査名" and "raw_id" in comments["raw_id"]
    con.close()


def test_broken_files_are_warned_about_and_the_rest_loads(tmp_path):
    folder = tmp_path / "views"
    write_views(folder, {"labs.json": LABS, "broken.json": {**LABS, "name": "broken",
                         "select": [{"column": [{"name": "x", "path": "code.coding.where(system = )"}]}]},
                         "garbage.json": "{not json"})
    with pytest.warns(ViewCatalogWarning) as caught:
        assets, _ = build_view_assets(folder)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert any("broken.json: select[0].column[0].path:" in m for m in messages)
    assert any("garbage.json: not valid JSON" in m for m in messages)
    assert [key.to_user_string() for a in assets for key in a.keys] == ["views/labs"]
    dg.Definitions.validate_loadable(dg.Definitions(assets=assets, resources={"karte": KarteWarehouse()}))


def test_view_asset_is_documented_before_any_run(tmp_path):
    folder = tmp_path / "views"
    write_views(folder, {"labs.json": LABS})
    with warnings.catch_warnings():
        warnings.simplefilter("error", ViewCatalogWarning)  # a good folder warns about nothing
        [asset], _ = build_view_assets(folder)
    spec = next(iter(asset.specs))
    assert spec.group_name == "views" and spec.key == dg.AssetKey(["views", "labs"])
    columns = spec.metadata["dagster/column_schema"].columns
    assert [(c.name, c.type) for c in columns] == [
        ("raw_id", "BIGINT"), ("id", "VARCHAR"), ("code", "VARCHAR"), ("codes", "VARCHAR[]")]
    assert columns[2].description == "検査名"
    assert "one row per Observation" in spec.description
    assert {"core", "lab_result"} <= {part for dep in spec.deps for part in dep.asset_key.path}


def test_materialise_over_ingested_examples(examples, inbox, tmp_path):
    write_bundles(inbox, {"obs.json": load_example(OBSERVATIONS)})
    warehouse = tmp_path / "w.duckdb"
    summary, con = run_ingest(inbox, warehouse)
    con.close()
    assert summary["records_quarantined"] == 0
    folder = tmp_path / "views"
    patient_ids = {"resourceType": "ViewDefinition", "name": "patient_ids", "resource": "Patient",
                   "select": [{"column": [{"name": "member", "path": "identifier.value.first()"}]}]}
    many_codes = {"resourceType": "ViewDefinition", "name": "many_codes", "resource": "Observation",
                  "select": [{"column": [{"name": "code", "path": "code.coding.code"}]}]}  # 2+ codings each
    write_views(folder, {"labs.json": LABS, "patient_ids.json": patient_ids, "many.json": many_codes})
    assets, _ = build_view_assets(folder)
    result = dg.materialize(assets, resources={"karte": KarteWarehouse(warehouse=str(warehouse))},
                            raise_on_error=False)
    failures = [e.event_specific_data.error.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert any("views.many_codes (many.json): the view failed while running" in m
               and "returned more than one value" in m for m in failures), failures
    checks = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}
    assert checks["labs"].passed
    # a view that exposes the raw insurance identifier fails its check and leaves no table behind
    assert not checks["patient_ids"].passed
    assert checks["patient_ids"].metadata["columns"].value == ["member"]
    con = connect(warehouse, read_only=True)
    assert con.execute("SELECT count(*) FROM views.labs").fetchone()[0] == 4
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'views' "
                       "AND table_name = 'patient_ids'").fetchone()[0] == 0
    con.close()


def test_shipped_views_are_assets_of_the_code_location():
    from pipelines.definitions import all_assets

    keys = {key.to_user_string() for a in all_assets for key in a.keys}
    assert {"views/condition_by_icd10", "views/lab_result_flat"} <= keys


def _catalog(tmp_path, views):
    folder = tmp_path / "views"
    write_views(folder, views)
    return load_catalog(folder)
