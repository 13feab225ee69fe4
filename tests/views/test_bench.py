"""`karte bench` smoke test at a tiny size: the report's shape and that both flattens agree (no timing asserts)."""

import json

from pipelines.bench.cli import _table
from pipelines.bench.views import HAND_WRITTEN_SQL
from pipelines.cli import main


def test_bench_writes_its_sections_and_keeps_others(tmp_path, capsys):
    out = tmp_path / "bench.json"
    out.write_text(json.dumps({"other": {"rows_per_second": 1}}), encoding="utf-8")
    code = main(["bench", "--only", "views", "--resources", "2000", "--repeat", "1", "--out", str(out), "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["other"] == {"rows_per_second": 1}  # another subject's section survives
    views = report["views"]
    assert printed["views"] == views
    assert views["resources"] == 2000 and views["rows_out"] == 2000
    assert views["outputs_identical"] is True  # the hand-written SQL computes exactly the view's rows
    assert views["compiled_rows_per_second"] > 0 and views["hand_written_rows_per_second"] > 0
    assert views["ratio_compiled_to_hand_written"] > 0
    assert {"cpu_count", "duckdb", "python"} <= report["machine"].keys()
    table = _table(report)  # what the command prints without --json
    assert "compiled staging observation view" in table and "ratio compiled / hand-written" in table


def test_bad_arguments_exit_2(capsys):
    assert main(["bench", "--resources", "0"]) == 2
    assert "--resources" in capsys.readouterr().err


def test_hand_written_sql_reads_only_the_bench_table():
    assert "bench_resource" in HAND_WRITTEN_SQL and "json_transform" in HAND_WRITTEN_SQL


def test_ingest_bench_smoke(tmp_path):
    """The ingest section runs end to end on a tiny sample and reports every figure (no timing asserts)."""
    from pipelines.bench.ingest import run_ingest_bench, table

    result = run_ingest_bench(patients=30, naive_sample=50).as_dict()
    assert result["fhir_resources"] > 0 and result["karte_records"] >= result["fhir_resources"]
    assert result["ratio_karte_to_parse_limit"] > 0 and result["ratio_karte_to_naive"] > 0
    assert "staging.fhir_structure" in result["karte_steps"] and result["karte_peak_rss_mib"] > 0
    floor = result["floor_seconds"]
    assert list(floor) == ["parse", "structure check", "seal", "serialise"] and all(v > 0 for v in floor.values())
    # the bound is the cores' share of the parse in the whole per-resource work: below the cores, above nothing
    assert 0 < result["floor_ratio_bound"] < result["floor_cores"]
    printed = table(result)
    assert "parse limit" in printed and "per-resource floor" in printed
    earlier = {k: v for k, v in result.items() if not k.startswith("floor_")}  # a report from before the floor
    assert "parse limit" in table(earlier) and "per-resource floor" not in table(earlier)
