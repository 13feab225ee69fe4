"""`karte bench` smoke test at a tiny size: the report's shape and that both flattens agree (no timing asserts)."""

import json
from pathlib import Path

import pytest

from pipelines.bench import child_figures
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
    history = (tmp_path / "bench_history.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(history) == 1  # the run is also recorded, with the code it measured
    run = json.loads(history[0])
    assert run["sections"]["views"] == views and run["measured_at"] == report["machine"]["measured_at"]
    assert run["revision"] is None or len(run["revision"].removesuffix("+changes")) == 12
    assert main(["bench", "--history", "--out", str(out)]) == 0
    assert f"views        compiled / hand-written {views['ratio_compiled_to_hand_written']:.2f}" in capsys.readouterr().out


def test_bad_arguments_exit_2(capsys):
    assert main(["bench", "--resources", "0"]) == 2
    assert "--resources" in capsys.readouterr().err
    assert main(["bench", "--history", "0"]) == 2
    assert "--history" in capsys.readouterr().err
    # 1 × "as deployed" is the +1 % scenario the section always runs; the option is for larger inputs
    with pytest.raises(SystemExit) as bad_scale:  # argparse's own usage error
        main(["bench", "--only", "incremental", "--deployment-scale", "1"])
    assert bad_scale.value.code == 2 and "must be at least 2" in capsys.readouterr().err


def _run(measured_at: str, **sections) -> dict:
    return {"machine": {"measured_at": measured_at, "cpu_count": 2, "duckdb": "1.5.5"}, **sections}


INCREMENTAL = {"rerun_seconds": 0.21, "increment_share": 0.169, "full_seconds": 6.4, "rss_ratio": 1.31}
REPORTS = {"adoption": {"median_seconds": 8.75}, "audit": {"median_seconds": 8.21}, "facilities": 180000,
           "access_events": 10_000_000}


def test_history_prints_each_runs_headline_figures_oldest_first(tmp_path, capsys):
    from pipelines.bench.report import append_history

    report = tmp_path / "bench.json"
    append_history(report, _run("2026-11-25T10:00:00+00:00", incremental=INCREMENTAL))
    append_history(report, _run("2026-11-26T10:00:00+00:00", reports=REPORTS, incremental={"old_figure": 1}))
    with (tmp_path / "bench_history.jsonl").open("a", encoding="utf-8") as history:
        history.write('{"measured_at": "2026-11-27T0')  # a run killed while writing its line
    assert main(["bench", "--history", "--out", str(report)]) == 0
    printed = capsys.readouterr().out
    assert printed.index("2026-11-25T10:00") < printed.index("2026-11-26T10:00")
    assert "+1 % data 16.9% of the full load (6.40 s), 4 × input 1.31× peak RSS" in printed
    assert "adoption 8.75 s, audit 8.21 s" in printed
    assert "(written by a release that recorded other figures)" in printed  # an older section's shape
    assert "1 unreadable line(s) skipped" in printed

    assert main(["bench", "--history", "1", "--only", "incremental", "--out", str(report), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["measured_at"] for r in runs["runs"]] == ["2026-11-26T10:00:00+00:00"] and runs["unreadable_lines"] == 1

    assert main(["bench", "--history", "--only", "views", "--out", str(report)]) == 0
    assert "no benchmark runs recorded" in capsys.readouterr().out


def test_hand_written_sql_reads_only_the_bench_table():
    assert "bench_resource" in HAND_WRITTEN_SQL and "json_transform" in HAND_WRITTEN_SQL


def test_ingest_bench_smoke(tmp_path):
    """The ingest section runs end to end on a tiny sample and reports every figure (no timing asserts)."""
    from pipelines.bench.ingest import headline, run_ingest_bench, table

    result = run_ingest_bench(patients=30, naive_sample=50, repeat=2).as_dict()
    assert result["fhir_resources"] > 0 and result["karte_records"] >= result["fhir_resources"]
    assert result["ratio_karte_to_parse_limit"] > 0 and result["ratio_karte_to_naive"] > 0
    # two rounds, each Karte run against its own round's baselines; the ratios are the medians of those
    rounds = result["ratio_rounds"]
    assert len(result["karte_runs_seconds"]) == len(result["naive_runs_per_second"]) == len(rounds["naive"]) == 2
    assert abs(result["ratio_karte_to_naive"] - sum(rounds["naive"]) / 2) <= 0.01  # the rounds' are rounded too
    assert "staging.fhir_structure" in result["karte_steps"] and result["karte_peak_rss_mib"] > 0
    floor = result["floor_seconds"]
    assert list(floor) == ["parse", "structure check", "seal", "serialise"] and all(v > 0 for v in floor.values())
    # the bound is the cores' share of the parse in the whole per-resource work: below the cores, above nothing
    assert 0 < result["floor_ratio_bound"] < result["floor_cores"]
    printed = table(result)
    assert "parse limit" in printed and "per-resource floor" in printed and "medians of the rounds' own" in printed
    earlier = {k: v for k, v in result.items() if not k.startswith("floor_")}  # a report from before the floor
    assert "parse limit" in table(earlier) and "per-resource floor" not in table(earlier)
    assert f"(floor allows {result['floor_ratio_bound']})" in headline(result) and "(floor" not in headline(earlier)
    # the CPU the ingest spent (child and workers) against what each throughput target leaves on these cores
    assert result["karte_cpu_seconds"] > 0 and len(result["karte_cpu_runs_seconds"]) == 2
    assert abs(result["karte_cpu_seconds"] - sum(result["karte_cpu_runs_seconds"]) / 2) <= 0.01  # their median
    allowed = result["cpu_allowed"]
    naive_allows = allowed["cores"] * result["karte_records"] / (20 * result["naive_resources_per_second"])
    assert abs(allowed["naive"] - naive_allows) <= 0.01 * naive_allows + 0.01
    assert 0 < allowed["parse_limit"] and "CPU-s, Karte / parse limit 0.5 allows" in printed
    assert "records (" in printed and "ms a record" in printed
    assert "ms a record" not in table({k: v for k, v in result.items() if k != "cpu_allowed"})


def test_incremental_bench_smoke():
    """The incremental section on a tiny sample, in two rounds: every scenario runs, the archive one moves the
    files its full load finished, each ratio is the median of the rounds' own (no timing asserts)."""
    from pipelines.bench.incremental import headline, run_incremental_bench, table

    result = run_incremental_bench(patients=20, scale=2, repeat=2, deployment_scale=3).as_dict()
    rounds = result["rounds"]
    assert len(rounds) == 2 and all(r["full_seconds"] > 0 for r in rounds)
    for name in ("rss_ratio", "increment_share"):
        assert abs(result[name] - (rounds[0][name] + rounds[1][name]) / 2) <= 0.001
    merging = [r["partitioned_peak_rss_mib"] for r in rounds]
    assert abs(result["partitioned_rss_ratio"]["peak_rss_mib"] - sum(merging) / 2) <= 0.001
    assert "rounds (medians count, ratios each round's own)" in table(result)
    assert "rounds (" not in table({k: v for k, v in result.items() if k != "rounds"})
    assert result["increment_records"] > 0 and result["scaled_records"] > result["full_records"]
    # 1 % new data for the 2 × input's warehouse, against that warehouse's full load
    assert 0 < result["scaled_increment_records"] < result["scaled_records"] and result["scaled_increment_share"] > 0
    assert abs(result["scaled_increment_share"] - sum(r["scaled_increment_share"] for r in rounds) / 2) <= 0.001
    assert "+1 % new data at 2×" in table(result) and "(at 2 × the data" in headline(result)
    older = {k: v for k, v in result.items() if not k.startswith(("scaled_increment", "deployment"))}
    assert "+1 % new data at" not in table(older) and "(at 2 ×" not in headline(older)
    assert result["archive_files_moved"] > 20 and result["archive_increment_seconds"] > 0
    assert "with an archive (KARTE_ARCHIVE)" in table(result) and "with an archive re-run" in headline(result)
    earlier = {k: v for k, v in result.items() if not k.startswith("archive_")}  # a report from before it
    assert "with an archive" not in table(earlier) + headline(earlier)
    # the partitioned ingest: the 2 × input on twice the shards, both processes' peaks compared
    full, scaled = result["partitioned"]["full"], result["partitioned"]["scaled"]
    assert (full["shards"], scaled["shards"]) == (4, 8) and full["records"] == result["full_records"]
    assert scaled["records"] == result["scaled_records"] and full["worker_peak_rss_mib"] > 0
    assert set(result["partitioned_rss_ratio"]) == {"peak_rss_mib", "worker_peak_rss_mib"}
    assert "partitioned ingest, 2× input on 8 shards against 4" in table(result)
    assert "partitioned 2 × input" in headline(result)
    before = {k: v for k, v in result.items() if not k.startswith("partitioned") and k != "rounds"}
    assert "partitioned" not in table(before) + headline(before)
    # step 8, asked for: the 3 × input as deployed — its own full load, then 1 % new data through an archive
    assert result["deployment_scale"] == 3 and result["deployment_records"] > result["scaled_records"]
    assert 0 < result["deployment_increment_records"] < result["deployment_records"]
    assert abs(result["deployment_increment_share"] - sum(r["deployment_increment_share"] for r in rounds) / 2) <= 0.001
    assert "+1 % new data at 3× as deployed (" in table(result) and "at 3× as deployed [" in table(result)
    assert "(at 3 × as deployed" in headline(result)
    not_asked = {**result, "deployment_scale": 0}  # what a run without --deployment-scale reports
    assert "as deployed" not in table(not_asked) + headline(not_asked)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="a process's own peak (VmHWM) needs procfs")
def test_a_child_reports_its_own_peak_not_its_parents():
    """Linux keeps ru_maxrss across exec, so the ingest children of `make bench` reported the views section's
    4.4 GiB as their own peak. A child started from a parent holding 400 MiB must report its own size."""
    ballast = b"x" * (400 << 20)  # written, so resident
    code = ("import json, resource; from pipelines.bench import FIGURES, own_peak_rss_kib; "
            "print(FIGURES + json.dumps({'own': own_peak_rss_kib(), "
            "'ru_maxrss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))")
    figures = child_figures(code, what="a small child")
    del ballast  # held until the child has run
    # an interpreter with the bench package: well under 200 MiB (ru_maxrss, printed on failure, says ≥ 400 MiB)
    assert figures["own"] < 200 << 10, figures
