"""The contract screen (contracts.failing_rows) stands in for pandera on clean rows only: on any frame,
contract_failures reports exactly what pandera validating every row reports."""

import polars as pl
import pytest

from pipelines.generate import generate
from pipelines.validation import contracts
from tests.conftest import run_ingest

STAGED = {
    "condition": contracts.StagedCondition, "allergy": contracts.StagedAllergy,
    "observation": contracts.StagedObservation, "medication_request": contracts.StagedMedicationRequest,
    "document": contracts.StagedDocument, "patient": contracts.StagedPatient, "consent": contracts.StagedConsent,
    "access_event": contracts.StagedAccessEvent, "facility": contracts.StagedFacility,
    "checkup_result": contracts.StagedCheckupResult,
}


def pandera_failures(model, frame: pl.DataFrame, key: str = "raw_id") -> pl.DataFrame:
    """What contract_failures reported before the screen: pandera over every row."""
    subset = frame.select(contracts.contract_columns(model)).with_row_index("_row")
    try:
        model.validate(subset, lazy=True)
    except contracts.pa.errors.SchemaErrors as exc:
        return (exc.failure_cases.with_columns(pl.col("index").cast(pl.UInt32))
                .join(subset.select("_row", key), left_on="index", right_on="_row")
                .select(key, pl.format("column {} fails {}: {}", "column", "check",
                                       pl.col("failure_case").cast(pl.String).fill_null("(missing)")).alias("message")))
    return pl.DataFrame(schema={key: pl.Int64, "message": pl.String})


def damaged(frame: pl.DataFrame, model) -> pl.DataFrame:
    """Deterministic faults in every contract column but the key: nulls, junk text, negative numbers, NaN."""
    frame = frame.with_row_index("_i")
    for j, column in enumerate(contracts.contract_columns(model)):
        if column == "raw_id":
            continue
        dtype = frame.schema[column]
        hit = pl.col("_i") % 17 == j % 17
        frame = frame.with_columns(pl.when(hit).then(pl.lit(None, dtype)).otherwise(pl.col(column)).alias(column))
        junk = {pl.String: pl.lit("zz!\u3000", pl.String), pl.Float64: pl.lit(float("nan"), pl.Float64)}.get(
            dtype, pl.lit(-3, dtype) if dtype.is_integer() else None)
        if junk is not None:
            junk_hit = pl.col("_i") % 13 == j % 13
            frame = frame.with_columns(pl.when(junk_hit).then(junk).otherwise(pl.col(column)).alias(column))
    return frame.drop("_i")


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> dict[str, pl.DataFrame]:
    root = tmp_path_factory.mktemp("contract_screen")
    generate(root / "inbox", facilities=6, patients=25, seed=11, fault_rate=0.05)
    _, con = run_ingest(root / "inbox", root / "w.duckdb")
    try:
        tables = {t for (t,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'staging'").fetchall()}
        return {name: con.sql(f"SELECT * FROM staging.{name}").pl() for name in STAGED if name in tables}
    finally:
        con.close()


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select("raw_id", "message").sort("raw_id", "message")


@pytest.mark.parametrize("table", sorted(STAGED))
def test_failures_are_pandera_s_on_damaged_rows(staged, table):
    if table not in staged or staged[table].is_empty():
        pytest.skip(f"the sample staged no {table} rows")
    model = STAGED[table]
    frame = damaged(staged[table], model)
    found = contracts.contract_failures(model, frame)
    assert found.height > 0
    assert found["rule_id"].unique().to_list() == ["K-CONTRACT"]
    assert _sorted(found).equals(_sorted(pandera_failures(model, frame)))


@pytest.mark.parametrize("table", ["condition", "consent", "patient"])
def test_clean_rows_never_reach_pandera(staged, table, monkeypatch):
    model = STAGED[table]
    clean = staged[table]
    assert contracts.failing_rows(model, clean) is not None, "the screen can stand in for this contract"

    def no_pandera(*args, **kwargs):
        raise AssertionError("pandera ran on clean rows")

    monkeypatch.setattr(model, "validate", no_pandera)
    assert contracts.contract_failures(model, clean).is_empty()


def test_pandera_sees_only_the_failing_rows(staged, monkeypatch):
    model = contracts.StagedCondition
    frame = staged["condition"]
    bad = frame.with_columns(pl.when(pl.col("raw_id") == frame["raw_id"][1]).then(pl.lit("not-a-medis-code"))
                             .otherwise("medis_code").alias("medis_code"))
    seen = []
    validate = model.validate

    def counting(subset, **kwargs):
        seen.append(subset.height)
        return validate(subset, **kwargs)

    monkeypatch.setattr(model, "validate", counting)
    found = contracts.contract_failures(model, bad)
    assert seen == [1]
    assert found["raw_id"].to_list() == [frame["raw_id"][1]]
    assert found["message"].to_list() == ["column medis_code fails str_matches('^[0-9]{8}$'): not-a-medis-code"]


def test_a_wrong_dtype_is_still_a_karte_bug(staged):
    frame = staged["condition"].with_columns(pl.col("identity_occurrence").cast(pl.String))
    assert contracts.failing_rows(contracts.StagedCondition, frame) is None
    with pytest.raises(TypeError, match="identity_occurrence"):
        contracts.contract_failures(contracts.StagedCondition, frame)


def test_uniqueness_is_left_to_pandera():
    frame = pl.DataFrame({"bundle_key": [1, 1, 2], "file_id": [1, 1, 1], "is_clins": [True, True, False],
                          "accepted": [True, True, True]})
    frame = frame.with_columns(*(pl.lit(None, pl.String).alias(c) for c in contracts.contract_columns(
        contracts.StagedBundle) if c not in frame.columns))
    assert contracts.failing_rows(contracts.StagedBundle, frame) is None
    found = contracts.contract_failures(contracts.StagedBundle, frame, key="bundle_key")
    assert sorted(found["bundle_key"].to_list()) == [1, 1]
    assert all("field_uniqueness" in m for m in found["message"].to_list())
