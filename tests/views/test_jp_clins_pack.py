"""The JP-CLINS view pack: our own SQL on FHIR test-suite files for the staging views.

Each file in tests/views/jp_clins_pack/ is in the suite's format (title, description, fhirVersion, resources,
tests: [{title, view, expect}]) with small hand-made JP-CLINS resources (Japanese and full-width text,
JLAC10 under several system URIs, MEDIS and ICD-10 codes, meta.tag flags, contained resources, extensions)
and hand-computed expected rows. The views are inlined so the pack runs on any SoF runner; a separate test
proves every inlined view is the staging view of the same name (tests/views/pack_sync.py refreshes them).
Cases run exactly as the conformance suite runs its own: same loading, same comparison (imported).
"""

from __future__ import annotations

import pytest

from tests.conformance.test_sql_on_fhir import _check, _run
from tests.views.pack_sync import load_pack, pack_files, staging_views, stale_copies


def _cases() -> list:
    return [pytest.param(pack, test, id=f"{path.name}::{test['title']}")
            for path in pack_files() for pack in [load_pack(path)] for test in pack["tests"]]


@pytest.mark.parametrize("pack, case", _cases())
def test_pack_case(pack: dict, case: dict) -> None:
    columns, rows = _run(pack["resources"], case["view"])
    problem = _check(case, columns, rows)
    assert problem is None, problem


def test_pack_files_are_in_the_suite_format() -> None:
    assert pack_files(), "the pack is empty"
    for path in pack_files():
        pack = load_pack(path)
        assert {"title", "description", "fhirVersion", "resources", "tests"} <= pack.keys(), path.name
        assert pack["resources"] and pack["tests"], path.name
        for test in pack["tests"]:
            assert {"title", "view", "expect"} <= test.keys(), f"{path.name}: {test.get('title')}"


def test_inlined_views_are_the_staging_views() -> None:
    stale = stale_copies()
    assert not stale, (f"inlined views differ from pipelines/views/staging: {stale}; run "
                       "`.venv/bin/python -m tests.views.pack_sync`, then re-check those expected rows")


def test_every_staging_view_is_exercised() -> None:
    tested = {test["view"]["name"] for path in pack_files() for test in load_pack(path)["tests"]}
    missing = sorted(set(staging_views()) - tested)
    assert not missing, f"staging views without a JP-CLINS pack test: {missing}"
