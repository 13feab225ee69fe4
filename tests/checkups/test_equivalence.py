"""The same checkup sent as 特定健診 XML and as an eCheckup FHIR bundle (either variant) gives identical rows,
apart from source_form."""

import polars as pl

from pipelines.checkups.fhir import bundles_rows
from pipelines.generate.checkup_fhir import checkup_bundle
from pipelines.generate.common import rng_for
from tests.checkups.helpers import cda, planned, xml_rows

KEY = ["institution_number", "document_id", "item_code"]


def _fhir(checkups, variant: str) -> pl.DataFrame:
    bundles = []
    for c in checkups:
        original, c.variant = c.variant, variant
        try:
            bundles.append(checkup_bundle(c, rng_for(9, c.document_id)))
        finally:
            c.variant = original
    return bundles_rows(bundles)


def test_both_forms_give_identical_rows():
    checkups = [c for c in planned() if c.patient.symbol]  # the generic variant needs a 記号 in the Coverage
    assert len(checkups) > 40 and {c.program for c in checkups} == {"010", "030"}
    xml = pl.concat([xml_rows(cda(c)) for c in checkups])
    for variant in ("clins", "generic"):
        fhir = _fhir(checkups, variant)
        assert set(fhir["source_form"]) == {"fhir"} and set(xml["source_form"]) == {"xml"}
        assert fhir.drop("source_form").sort(KEY).equals(xml.drop("source_form").sort(KEY)), variant
    assert xml.height == sum(len(c.results.items) for c in checkups)
    # every value type and the shapes that differ most between the forms are in there
    assert set(xml["value_type"]) == {"PQ", "CD", "CO", "ST"}
    assert xml.filter(pl.col("item_code") == "9A752000000000001").height > 0  # organizer in CDA
    assert xml.filter(pl.col("item_code") == "9N056160400000049").height > 0  # component / entryRelationship
