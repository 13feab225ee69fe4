"""eCheckup FHIR bundles → common rows: the official sample read in place, headers from columns or values."""

import json

import polars as pl
import pytest

from pipelines.checkups.fhir import bundle_header, bundle_rows, bundles_rows, checkup_rows, view_frame
from pipelines.checkups.rows import ROW_COLUMNS
from pipelines.generate.checkup_fhir import checkup_bundle
from pipelines.generate.common import rng_for
from tests.checkups.helpers import planned, specific_checkup

SAMPLE = "Bundle-Bundle-eCheckupReport-Sample-01.json"


@pytest.fixture(scope="module")
def official(examples) -> dict:
    path = examples / SAMPLE
    if not path.is_file():
        pytest.skip(f"official eCheckupReport sample not found at {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def test_official_sample_header(official):
    assert bundle_header(official) == {
        "member_id": "06123456:12345:67890:01",  # Coverage extensions (full-width) + insurer 保険者番号, NFKC
        "sex": "male", "birth_date": "1950-05-04",
        "checkup_date": "2020-04-04",  # Encounter.period.start (the Composition event is the report date)
        "program": "010", "institution_number": "1311234567", "document_id": "12345",
    }


def test_official_sample_rows(official):
    rows = bundle_rows(official)
    observations = [e for e in official["entry"] if e["resource"]["resourceType"] == "Observation"]
    components = sum(len(e["resource"].get("component", [])) for e in observations)
    assert len(observations) == 44 and rows.height == 44 + components == 46
    assert rows.columns == ROW_COLUMNS and set(rows["source_form"]) == {"fhir"}
    assert rows["item_name"].null_count() == 0  # every code is one of the 322
    by_code = {r["item_code"]: r for r in rows.iter_rows(named=True)}
    assert (by_code["9N001000000000001"]["value_number"], by_code["9N001000000000001"]["value_unit"]) == (162.3, "cm")
    assert by_code["9A751000000000001"]["value_unit"] == "mm[Hg]"  # the UCUM code, not the display 'mmHg'
    assert by_code["3F015000002327101"]["value_unit"] == "mg/dL"
    hba1c = by_code["3D046000001906202"]
    assert (hba1c["value_number"], hba1c["interpretation"], hba1c["value_type"]) == (7.0, "H", "PQ")
    assert by_code["1A020000000191111"]["value_type"] == "CO"
    metabo = by_code["9N501000000000011"]
    assert (metabo["value_type"], metabo["value_code"], metabo["value_code_system"]) == (
        "CD", "3", "urn:oid:1.2.392.200119.6.1008")
    assert by_code["9N056160400000049"]["value_text"] == "ヘルニア、膀胱炎"  # a component of 既往歴
    assert by_code["9N511000000000049"]["value_type"] == "ST"


def test_header_as_columns_equals_header_as_values():
    bundles = [checkup_bundle(c, rng_for(1, c.document_id)) for c in planned()[:6]]
    together = bundles_rows(bundles)
    one_by_one = pl.concat([bundle_rows(b) for b in bundles])
    key = ["institution_number", "document_id", "item_code"]
    assert together.sort(key).equals(one_by_one.sort(key))
    observations = [(0, e["resource"]) for e in bundles[0]["entry"] if e["resource"]["resourceType"] == "Observation"]
    header = bundle_header(bundles[0])
    frame = view_frame(observations).with_columns(pl.lit(header["sex"]).alias("sex"))
    mixed = checkup_rows(frame, {k: v for k, v in header.items() if k != "sex"})
    assert mixed.sort(key).equals(bundle_rows(bundles[0]).sort(key))


def test_a_missing_header_field_is_an_error_not_null_rows():
    frame = view_frame([(0, e["resource"]) for e in checkup_bundle(specific_checkup(), rng_for(1))["entry"]
                        if e["resource"]["resourceType"] == "Observation"])
    with pytest.raises(KeyError, match="document_id"):
        checkup_rows(frame, {"member_id": "x", "sex": "male", "birth_date": "1960-01-01", "checkup_date": None,
                             "program": "010", "institution_number": "1312345678"})


def test_group_observations_yield_no_row():
    bundle = checkup_bundle(specific_checkup(), rng_for(1))
    group = {"resourceType": "Observation", "status": "final",
             "code": {"coding": [{"system": "http://jpfhir.jp/fhir/eCheckup/CodeSystem/observationGroup-codes",
                                  "code": "9A110"}]},
             "hasMember": [{"reference": bundle["entry"][-1]["fullUrl"]}], "effectiveDateTime": "2025-05-01"}
    with_group = {**bundle, "entry": [*bundle["entry"], {"fullUrl": "urn:uuid:group", "resource": group}]}
    assert bundle_rows(with_group).equals(bundle_rows(bundle))


def test_checkup_date_falls_back_to_the_earliest_effective_date():
    bundle = checkup_bundle(specific_checkup(), rng_for(1))
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "Encounter":
            del e["resource"]["period"]
    rows = bundle_rows(bundle)
    assert set(rows["checkup_date"]) == {specific_checkup().day.isoformat()}


def test_carried_columns_keep_each_rows_provenance():
    bundle = checkup_bundle(specific_checkup(), rng_for(1))
    observations = [(n, e["resource"]) for n, e in enumerate(bundle["entry"])
                    if e["resource"]["resourceType"] == "Observation"]
    frame = view_frame(observations).rename({"bundle_index": "raw_id"})
    rows = checkup_rows(frame, bundle_header(bundle), carry=["raw_id"])
    assert rows.columns == [*ROW_COLUMNS, "raw_id"] and rows.drop("raw_id").equals(bundle_rows(bundle))
    history = rows.filter(pl.col("item_code").is_in(["9N056000000000011", "9N056160400000049"]))
    assert history["raw_id"].n_unique() == 1  # a component comes from its parent Observation
    assert checkup_rows(frame.clear(), {}, carry=["raw_id"]).columns == [*ROW_COLUMNS, "raw_id"]
