"""The generator's checkup inputs: both forms, read back by Karte's readers, equal the truth; the eCheckup
bundles follow their IG; every injected checkup fault is caught with its rule, at its unit, and nothing else."""

import csv
import hashlib
import re
import unicodedata
from pathlib import Path

import orjson
import polars as pl
import pytest
from fhir.resources.R4B import get_fhir_model_class

from pipelines.checkups import codes as K
from pipelines.checkups.archive import NAME_RE
from pipelines.checkups.plausibility import apply_plausibility
from pipelines.fhir import systems as S
from pipelines.generate.checkup_faults import CHECKUP_EXPECTED
from pipelines.rules import RULES
from tests.checkups.conftest import checkup_bundles, read_sample

R1013 = re.compile(r"^[0-9]{8}:[^:^\s^　]*:[^:^\s^　]*:(.{0}|[0-9][0-9])$")
R2152 = re.compile(r"^[0-4][0-9][1-3][0-9]{7}\^20[2-3][0-9]\^[A-Za-z0-9\-]{1,36}$")


def truth(root: Path) -> pl.DataFrame:
    return pl.read_csv(root / "_truth" / "checkups.csv", infer_schema_length=0).with_columns(pl.all().fill_null(""))


def manifest(root: Path) -> dict:
    return orjson.loads((root / "_manifest.json").read_bytes())


def insurance_ids(root: Path) -> dict[str, str]:
    with open(root / "_truth" / "patients.csv", encoding="utf-8", newline="") as fh:
        return {r["patient_key"]: unicodedata.normalize("NFKC", r["insurance_id"]) for r in csv.DictReader(fh)}


# --- a clean sample ------------------------------------------------------------------------------------------

def test_rows_read_back_equal_the_truth(clean_sample, clean_rows):
    t = truth(clean_sample)
    assert t.height == clean_rows.height and set(t["in_warehouse"]) == {"true"}
    members = insurance_ids(clean_sample)
    expected = t.select(
        pl.col("patient_key").replace_strict(members).alias("member_id"), "sex", "birth_date", "checkup_date",
        "program", "institution_number", "document_id", "item_code", "item_name", "value_type",
        pl.col("value_number").replace("", None).cast(pl.Float64),
        *[pl.col(c).replace("", None)
          for c in ("value_unit", "value_code", "value_code_system", "value_text", "interpretation")],
        "source_form", "file")
    key = ["file", "document_id", "item_code"]
    got = clean_rows.select(expected.columns).sort(key)
    assert got.equals(expected.sort(key))


def test_clean_sample_passes_plausibility(clean_rows):
    passing, failed = apply_plausibility(clean_rows)
    assert failed.is_empty() and passing.height == clean_rows.height


def test_who_is_examined_and_how_it_is_sent(clean_sample):
    t = truth(clean_sample)
    checkups = t.unique(["institution_number", "document_id"]).with_columns(pl.col("age").cast(pl.Int64))
    specific, employer = checkups.filter(program="010"), checkups.filter(program="030")
    assert specific["age"].is_between(40, 74).all() and employer["age"].is_between(18, 39).all()
    assert specific.height > 100 and employer.height > 0
    assert set(checkups["fhir_variant"]) == {"", "clins", "generic"} and set(checkups["source_form"]) == {"fhir", "xml"}
    assert checkups.group_by("patient_key", "fiscal_year").len()["len"].max() == 1  # once a fiscal year
    assert set(specific["metabo"]) == {"1", "2", "3"} and set(specific["guidance_level"]) <= {"1", "2", "3"}
    values = t.filter(pl.col("value_number") != "").with_columns(pl.col("value_number").cast(pl.Float64),
                                                                  pl.col("age").cast(pl.Int64))
    height = values.filter(item_code="9N001000000000001").group_by("sex").agg(pl.col("value_number").mean())
    assert dict(height.iter_rows())["male"] > dict(height.iter_rows())["female"] + 8
    sbp = values.filter(item_code="9A751000000000001")
    older, younger = sbp.filter(pl.col("age") >= 60), sbp.filter(pl.col("age") < 50)
    assert older["value_number"].mean() > younger["value_number"].mean()


def test_echeckup_bundles_follow_their_ig(clean_sample):
    with open(clean_sample / "facilities" / "facility_registry.csv", encoding="utf-8", newline="") as fh:
        registry = {r["institution_number"]: r for r in csv.DictReader(fh)}
    bundles = checkup_bundles(clean_sample)
    variants = set()
    for n, (rel, b) in enumerate(bundles):
        clins = b["meta"]["profile"][0] == S.BUNDLE_ECHECKUP_CLINS
        variants.add(clins)
        assert b["type"] == "document" and b["entry"][0]["resource"]["resourceType"] == "Composition"
        by_url = {e["fullUrl"]: e["resource"] for e in b["entry"]}
        comp = b["entry"][0]["resource"]
        assert comp["type"]["coding"][0]["code"] in K.DOC_TYPES and comp["status"] == "final"
        assert comp["event"][0]["code"][0]["coding"][0]["system"] == K.PROGRAM_SYSTEM
        patient = by_url[comp["subject"]["reference"]]
        members = [i["value"] for i in patient["identifier"] if i["system"] == S.INSURANCE_MEMBER_ID]
        if clins:
            assert b["identifier"]["system"] == S.BUNDLE_IDENTIFIER and R2152.match(b["identifier"]["value"])
            assert len(members) == 1 and R1013.match(members[0])
        else:
            assert members == [] and b["identifier"]["system"] == K.DOCUMENT_INSTANCE_ID
            coverage = next(r for r in by_url.values() if r["meta"]["profile"] == [K.COVERAGE_INSURANCE_PROFILE])
            assert {x["url"] for x in coverage["extension"]} >= {K.EXT_SYMBOL, K.EXT_NUMBER}
            insurer = by_url[coverage["payor"][0]["reference"]]
            assert insurer["identifier"][0]["system"] == S.INSURER_NUMBER
        listed = [e["reference"] for s in comp["section"] for e in s["entry"]]
        observations = [u for u, r in by_url.items() if r["resourceType"] == "Observation"]
        assert sorted(listed) == sorted(observations)
        assert {s["code"]["coding"][0]["code"] for s in comp["section"]} <= set(K.SECTION_TITLES)
        for u in observations:
            obs = by_url[u]
            assert obs["meta"]["profile"] == [K.OBSERVATION_PROFILE] and obs["status"] == "final"
            assert obs["code"]["coding"][0]["system"] == K.ITEM_SYSTEM and obs["effectiveDateTime"]
        inst = rel[5:15]
        assert registry[inst]["connected_on"] and rel[16:24] > registry[inst]["connected_on"].replace("-", "")
        if n < 5:
            get_fhir_model_class("Bundle").model_validate(b)
    assert variants == {True, False}


def test_archives_are_named_counted_and_readable(clean_sample):
    names = [p.name for p in (clean_sample / "checkups").iterdir()]
    assert names and all(NAME_RE.match(n) for n in names)
    counts = manifest(clean_sample)["counts"]["checkups"]
    t = truth(clean_sample).unique(["institution_number", "document_id"])
    assert counts["checkups"] == t.height and counts["xml_documents"] == t.filter(source_form="xml").height
    assert counts["xml_archives"] == len(names) and manifest(clean_sample)["checkup_faults"] == []


# --- a faulty sample ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def faulty(faulty_sample):
    rows, archive_errors, document_errors = read_sample(faulty_sample)
    return manifest(faulty_sample), rows, archive_errors, document_errors


def test_every_checkup_fault_kind_is_injected(faulty):
    m = faulty[0]
    assert {f["fault"] for f in m["checkup_faults"]} == set(CHECKUP_EXPECTED)
    assert m["checkup_forced_kinds_unavailable"] == []
    for f in m["checkup_faults"]:
        assert (f["expected_rule"], f["expected_outcome"]) == CHECKUP_EXPECTED[f["fault"]]
        assert f["expected_rule"] is None or f["expected_rule"] in RULES


def test_every_checkup_fault_is_caught_where_the_manifest_says_and_nothing_else(faulty_sample, faulty):
    m, rows, archive_errors, document_errors = faulty
    expected, copies = set(), set()
    for f in m["checkup_faults"]:
        outcome = f["expected_outcome"]
        if outcome == "quarantine_file":
            expected.add(("file", f["file"], f["expected_rule"]))
        elif outcome == "quarantine_document":
            expected.add(("document", f["file"], f["document_id"], f["expected_rule"]))
        elif outcome == "quarantine_item":
            expected |= {("item", f["file"], f["document_id"], code, f["expected_rule"]) for code in f["item_codes"]}
        else:  # a byte-identical copy: the ingest skips it by its hash
            copy, original = faulty_sample / f["file"], faulty_sample / f["duplicate_of"]
            assert hashlib.sha256(copy.read_bytes()).digest() == hashlib.sha256(original.read_bytes()).digest()
            copies.add(f["file"])
    found = {("file", file, rule) for file, (rule, _) in archive_errors.items()}
    found |= {("document", file, member.removeprefix("DATA/").removesuffix(".xml"), rule)
              for (file, member), (rule, _) in document_errors.items()}
    _, failed = apply_plausibility(rows.filter(~pl.col("file").is_in(list(copies))).drop("file"))
    located = failed.join(rows.select("institution_number", "document_id", "file").unique(),
                          on=["institution_number", "document_id"])
    found |= {("item", r["file"], r["document_id"], r["item_code"], r["rule_id"])
              for r in located.iter_rows(named=True)}
    assert found == expected


def test_truth_says_what_a_correct_ingest_keeps(faulty_sample, faulty):
    m, rows, _, _ = faulty
    copies = [f["file"] for f in m["checkup_faults"] if f["fault"] == "checkup_duplicate_archive"]
    passing, _ = apply_plausibility(rows.filter(~pl.col("file").is_in(copies)).drop("file"))
    kept = truth(faulty_sample).filter(in_warehouse="true")
    key = ["institution_number", "document_id", "item_code"]
    assert passing.select(key).sort(key).equals(kept.select(key).sort(key))
