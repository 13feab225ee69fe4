"""Every staging view over every official JP-CLINS example (read in place from ../shared; skipped when absent).

Bundles are expanded to their entries exactly as `karte view run --input` does. The invariants: no view fails
on any example (the IG's error examples included), a view without forEach/repeat/unionAll gives exactly one
row per resource of its type, the others at least one where the view promises it, and the lab bundle gives
its four results with their JLAC10 codes.
"""

from __future__ import annotations

import json
from collections import Counter

import duckdb
import pytest

from pipelines.views import compile_view
from pipelines.views.adhoc import read_resources
from tests.views.pack_sync import staging_views

FANS_OUT = ("forEach", "forEachOrNull", "repeat", "unionAll")
#: fan-out views that still give every resource of their type at least one row
AT_LEAST_ONE_ROW = {"staging_consent", "staging_checkup_observation"}
STAGING = staging_views()


@pytest.fixture(scope="module")
def con(examples):
    con = duckdb.connect()
    con.execute("CREATE TABLE resources (file VARCHAR, resource_type VARCHAR, resource_id VARCHAR, resource JSON)")
    rows = []
    for path in sorted(examples.glob("*.json")):
        for text in read_resources(path):
            resource = json.loads(text)
            rows.append((path.name, resource["resourceType"], resource.get("id"), text))
    con.executemany("INSERT INTO resources VALUES (?, ?, ?, ?)", rows)
    yield con
    con.close()


def _fans_out(selection: dict) -> bool:
    return any(k in selection for k in FANS_OUT) or any(_fans_out(s) for s in selection.get("select", []))


@pytest.mark.parametrize("name", sorted(STAGING))
def test_staging_view_over_every_example(con, name):
    path, view = STAGING[name]
    sql = compile_view(view, "resources", carry=("file",))
    try:
        rows = con.execute(sql).fetchall()
    except duckdb.Error:
        failing = [f for (f,) in con.execute("SELECT DISTINCT file FROM resources ORDER BY 1").fetchall()
                   if _fails(con, view, f)]
        pytest.fail(f"{path.name} fails on {failing}")
    per_file = Counter(row[0] for row in rows)
    expected = Counter(dict(con.execute(
        "SELECT file, count(*) FROM resources WHERE resource_type = ? GROUP BY file", [view["resource"]]).fetchall()))
    if not _fans_out({"select": view["select"]}):
        assert per_file == expected, f"{path.name}: rows per example differ from resources per example"
    elif name in AT_LEAST_ONE_ROW:
        assert all(per_file[f] >= n for f, n in expected.items()), f"{path.name}: a resource without a row"
    assert set(per_file) <= set(expected), f"{path.name}: rows from examples without a {view['resource']}"
    columns = [d[0] for d in con.execute(f"DESCRIBE {sql}").fetchall()]
    if "resource_id" in columns:
        ids = {(f, i) for f, i in con.execute(
            "SELECT file, resource_id FROM resources WHERE resource_type = ?", [view["resource"]]).fetchall()}
        got = {(row[0], row[columns.index("resource_id")]) for row in rows}
        assert got <= ids, f"{path.name}: resource_id not taken from Resource.id"


def _fails(con, view, file: str) -> bool:
    try:
        con.execute(compile_view(view, f"(SELECT * FROM resources WHERE file = '{file}')")).fetchall()
    except duckdb.Error:
        return True
    return False


def test_observations_bundle_gives_four_lab_results_with_their_jlac10_codes(con):
    _, view = STAGING["staging_observation"]
    sql = compile_view(view, "(SELECT * FROM resources WHERE file = 'Bundle-Bundle-CLINS-Observations-Example-01.json')")
    rows = con.execute(f"SELECT coalesce(jlac10_code, core_labo_code, infection_code), institution_number_ext, "
                       f"has_contained_encounter, category_codes FROM ({sql})").fetchall()
    assert len(rows) == 4
    assert sorted(r[0] for r in rows) == sorted(
        ["3A015000001827101", "3H015000002326101", "8A065000002391901", "1A990000000190153"])
    assert {r[1] for r in rows} == {"1318814790"}
    assert all(r[2] for r in rows) and all(r[3] == ["laboratory"] for r in rows)


def test_referral_document_sections_point_at_bundle_entries(con):
    _, view = STAGING["staging_document_section"]
    file = "Bundle-Bundle-CLINS-Referral-Example-01.json"
    sql = compile_view(view, f"(SELECT * FROM resources WHERE file = '{file}')")
    refs = {r for (r,) in con.execute(f"SELECT entry_reference FROM ({sql}) WHERE entry_reference IS NOT NULL").fetchall()}
    bundle = json.loads(con.execute("SELECT resource FROM resources WHERE file = ? AND resource_type = 'Bundle'",
                                    [file]).fetchone()[0])
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    assert refs and refs <= full_urls
