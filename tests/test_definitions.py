"""The Dagster code location: loads, has one group per layer, and a full in-process run on the official
examples materialises every asset with every asset check passing."""

import dagster as dg

from pipelines.config import load_settings
from pipelines.definitions import all_assets, defs
from pipelines.jobs import run_all_assets
from tests.conftest import load_example, write_bundles


def test_definitions_load_with_layer_groups():
    dg.Definitions.validate_loadable(defs)
    groups = {spec.group_name for a in all_assets for spec in a.specs}
    assert groups == {"landing", "raw", "staging", "core", "ops", "reports", "views"}
    keys = {key.to_user_string() for a in all_assets for key in a.keys}
    assert {"staging/condition", "core/lab_result", "core/consent_event", "reports/quality"} <= keys
    assert defs.get_job_def("ingest_job") is not None


def test_full_run_passes_every_check(examples, inbox, tmp_path):
    write_bundles(inbox, {"obs.json": load_example("Bundle-Bundle-CLINS-Observations-Example-01.json"),
                          "ref.json": load_example("Bundle-Bundle-CLINS-Referral-Example-01.json")})
    settings = load_settings(warehouse=tmp_path / "w.duckdb", inbox=inbox, reports=tmp_path / "reports")
    result = run_all_assets(settings)
    assert result["success"], result["failed_checks"]
    assert result["checks_failed"] == 0 and result["checks_passed"] >= 10
    assert result["ingest"]["records_quarantined"] == 0
    assert result["ingest"]["loaded_by_table"]["core.lab_result"] == 4
    assert {p.rsplit("/", 1)[-1] for p in result["reports"]} >= {
        "quality.html", "quality_by_facility_rule.csv", "quality_rejections.csv"}

    again = run_all_assets(settings)
    assert again["success"] and again["ingest"]["records_in"] == 0
    assert again["ingest"]["files_skipped_duplicate"] == again["ingest"]["files_unchanged"] == 2  # kept on ops.batch


def test_column_schemas_are_declared_before_any_run():
    specs = {spec.key.to_user_string(): spec for a in all_assets for spec in a.specs}
    condition = specs["staging/condition"].metadata["dagster/column_schema"]
    columns = {c.name: c for c in condition.columns}
    assert "MEDIS 病名管理番号" in columns["medis_code"].description
    core = specs["core/lab_result"].metadata["dagster/column_schema"]
    assert {"patient_key", "jlac10_code", "category", "raw_id"} <= {c.name for c in core.columns}
