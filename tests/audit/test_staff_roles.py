"""The staff-role code list (urn:karte:staff-role): the shipped reference, the generator's own copy and the
documentation agree."""

import csv

from pipelines.config import PROJECT_ROOT
from pipelines.fhir.systems import STAFF_ROLE_SYSTEM
from pipelines.generate.staff import ROLES

CSV = PROJECT_ROOT / "data" / "reference" / "staff_roles.csv"


def test_generator_roles_agree_with_the_reference_list():
    with open(CSV, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["role"]: (r["name_ja"], r["may_view_clinical"] == "true") for r in rows} == ROLES
    assert {r["may_view_clinical"] for r in rows} == {"true", "false"}


def test_code_system_is_documented():
    doc = (PROJECT_ROOT / "docs" / "audit.md").read_text(encoding="utf-8")
    assert STAFF_ROLE_SYSTEM in doc
    for role in ROLES:
        assert f"`{role}`" in doc, role
