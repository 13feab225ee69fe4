"""The national-scale benchmark's warehouse and runner, at a tiny size: the generator makes what it says (sizes,
onboarding, a chained access log, consents), the adoption report's totals are the synthesised counts, the audit
finds exactly the suspicious accesses the generator planted, and `karte bench --only reports` writes its section.
Speed is the benchmark's business (`karte bench`), not this test's."""

import json

import duckdb
import polars as pl
import pytest

from pipelines import cli
from pipelines.audit.chain import verify_chain
from pipelines.bench.scale import build_scale_warehouse, run_scale_bench, table
from pipelines.reports.adoption import stored
from pipelines.reports.adoption.measures import WINDOW_DAYS
from pipelines.warehouse import connect

FACILITIES, EVENTS = 2_000, 50_000


@pytest.fixture(scope="module")
def scale(tmp_path_factory):
    """(warehouse path, build summary, report folder) with both reports written by the CLI."""
    root = tmp_path_factory.mktemp("scale")
    path = root / "scale.duckdb"
    summary = build_scale_warehouse(path, FACILITIES, EVENTS)
    out = root / "reports"
    for name in ("adoption", "audit"):
        assert cli.main(["report", name, "--warehouse", str(path), "--out", str(out)]) == 0
    return path, summary, out


def _query(path, sql: str, params=None):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_the_warehouse_has_the_requested_sizes_and_a_national_mix(scale):
    path, summary, _ = scale
    assert summary["rows"]["core.facility"] == FACILITIES and summary["rows"]["core.access_event"] == EVENTS
    kinds = dict(_query(path, "SELECT facility_type, count(*) FROM core.facility GROUP BY ALL"))
    assert set(kinds) == {"hospital", "clinic", "dental"}
    assert kinds["clinic"] > kinds["dental"] > kinds["hospital"] > 0  # 105k : 66k : 8k nationally
    prefectures, first, last = _query(path, "SELECT count(DISTINCT prefecture_code), min(connected_on), "
                                            "max(connected_on) FROM core.facility")[0]
    assert prefectures == 47 and (last - first).days > 4 * 365  # onboarding spread over the 60 months
    # every view is by a facility connected by then, and no consent interval is inverted
    assert _query(path, """SELECT count(*) FROM core.access_event a JOIN core.facility f ON f.institution_number = a.viewer
                           WHERE f.connected_on IS NULL OR timezone('Asia/Tokyo', a.recorded)::DATE < f.connected_on
                           """)[0][0] == 0
    assert _query(path, "SELECT count(*) FROM core.consent_interval WHERE valid_to <= valid_from")[0][0] == 0


def test_the_access_log_is_hash_chained_like_an_ingested_one(scale):
    con = connect(scale[0], read_only=True)
    try:
        verdict = verify_chain(con)
    finally:
        con.close()
    assert verdict.intact and verdict.rows == EVENTS == verdict.head_seq


def test_the_adoption_facts_are_stored_as_a_nightly_run_leaves_them(scale):
    """Stored through the day before the last, so the timed report reads them and computes the last day's files
    itself (as it does the audit's last day) — and gets what a computation from scratch gets."""
    path, _, out = scale
    con = connect(path, read_only=True)
    try:
        state = stored.stored_state(con)
        later_days = con.execute(f"""SELECT count(*), count(DISTINCT regexp_extract(path, '_(\\d{{8}})_', 1))
                                     FROM ops.file_manifest WHERE file_id > {state.file_id}""").fetchone()
    finally:
        con.close()
    assert state != stored.EMPTY and later_days[0] > 0 and later_days[1] == 1
    inputs = dict(pl.read_parquet(out / "adoption_inputs.parquet").iter_rows())
    assert inputs["stored_facts"].endswith(f"{later_days[0]} later files computed for this report")


def test_the_same_sizes_give_the_same_warehouse(scale, tmp_path):
    again = tmp_path / "again.duckdb"
    build_scale_warehouse(again, FACILITIES, EVENTS)
    digest = ("SELECT md5(string_agg(access_id || viewer || recorded::VARCHAR || row_hash, ',' ORDER BY raw_id)) "
              "FROM core.access_event")
    assert _query(scale[0], digest) == _query(again, digest)


def test_adoption_totals_are_the_synthesised_counts(scale):
    path, _, out = scale
    national = pl.read_parquet(out / "adoption_trajectory.parquet").filter(segment="all").row(0, named=True)
    as_of = dict(pl.read_parquet(out / "adoption_inputs.parquet").iter_rows())["as_of"]
    connected = _query(path, "SELECT count(*) FROM core.facility WHERE connected_on <= ?::DATE", [as_of])[0][0]
    assert (national["registered"], national["connected"]) == (FACILITIES, connected) and connected > 0
    monthly = pl.read_parquet(out / "adoption_monthly.parquet")
    registered = monthly.filter(prefecture_code="00", segment="all", measure="connected")
    assert registered.height == 60 and set(registered["denominator"]) == {FACILITIES}
    by_prefecture = dict(_query(path, "SELECT prefecture_code, count(*) FROM core.facility GROUP BY ALL"))
    last = monthly.filter(pl.col("month") == monthly["month"].max(), segment="all")
    connected_rows = last.filter(measure="connected")
    assert dict(zip(connected_rows["prefecture_code"], connected_rows["denominator"])) == {"00": FACILITIES,
                                                                                          **by_prefecture}
    # viewing on the as-of date: connected facilities with a successful view in the window ending that day
    viewing = _query(path, f"""
        SELECT count(DISTINCT a.viewer) FROM core.access_event a JOIN core.facility f ON f.institution_number = a.viewer
        WHERE a.outcome = '0' AND f.connected_on <= ?::DATE
          AND timezone('Asia/Tokyo', a.recorded)::DATE BETWEEN ?::DATE - {WINDOW_DAYS - 1} AND ?::DATE""",
                     [as_of] * 3)[0][0]
    shown = last.filter(prefecture_code="00", measure="viewing")
    assert shown["numerator"].to_list() == [viewing] and viewing > 0
    assert pl.read_parquet(out / "adoption_facility.parquet").height == FACILITIES


def test_the_audit_finds_exactly_the_planted_accesses(scale):
    path, _, out = scale
    cases = pl.read_csv(out / "audit_cases.csv", infer_schema_length=0).select("access_id", "rule_id").unique()
    planted = pl.DataFrame(_query(path, "SELECT access_id, rule_id FROM bench.planted"), schema=["access_id", "rule_id"],
                           orient="row")
    assert set(planted["rule_id"]) == {"A-NO-CONSENT", "A-AFTER-WITHDRAWAL", "A-EMERGENCY", "A-ROLE",
                                       "A-UNDELIVERED", "A-VOLUME", "A-NO-CARE"}
    assert cases.sort(pl.all()).equals(planted.sort(pl.all()))
    suspicious = planted["access_id"].n_unique() / EVENTS
    assert 0.005 < suspicious < 0.1  # a small share, as in a real log


def test_the_bench_section_times_both_reports_and_prints_them(tmp_path):
    path = tmp_path / "tiny.duckdb"
    bench = run_scale_bench(300, 5_000, repeat=1, warehouse=path).as_dict()
    for name in ("adoption", "audit"):
        assert len(bench[name]["runs_seconds"]) == 1 and bench[name]["median_seconds"] > 0
        assert bench[name]["peak_rss_mib"] > 0
    assert bench["adoption"]["rows"]["registered"] == 300 and bench["audit"]["rows"]["findings"] > 0
    built = path.stat().st_mtime_ns  # kept for the next run, which reuses it without writing to it
    said: list[str] = []
    run_scale_bench(300, 5_000, repeat=1, warehouse=path, progress=said.append)
    assert path.stat().st_mtime_ns == built and any(s.startswith("reusing the scale warehouse") for s in said)
    with pytest.raises(RuntimeError, match="not a scale warehouse"):
        run_scale_bench(400, 5_000, repeat=1, warehouse=path)
    printed = table(json.loads(json.dumps(bench)))
    assert "adoption" in printed and "audit" in printed and "target ≤ 10 s" in printed


def test_the_cli_refuses_sizes_below_the_minimum(capsys):
    with pytest.raises(SystemExit) as bad:
        cli.main(["bench", "--only", "reports", "--facilities", "5"])
    assert bad.value.code == 2 and "at least 100" in capsys.readouterr().err
