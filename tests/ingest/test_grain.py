"""The per-file, per-bundle and per-record tables have no key (pipelines/warehouse/schema.sql): their grain is
kept by the statements that write them and checked by `repeated_keys` (the blocking grain asset checks)."""

import pytest

from pipelines.generate import generate
from pipelines.ingest.checks import records_with_several_outcomes
from pipelines.warehouse import connect
from pipelines.warehouse.grain import (
    FILE_CONTENT,
    FILE_ID,
    GRAINS,
    RAW_BUNDLE,
    RECORD_OUTCOME,
    STRUCTURE_FAILURE,
    high_water,
    repeated_keys,
)
from tests.conftest import run_ingest

KEYLESS = {grain.table for grain in GRAINS}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A generated inbox with faults (some resources fail the structure check) and its warehouse."""
    root = tmp_path_factory.mktemp("grain")
    generate(root / "inbox", facilities=4, patients=16, seed=11, fault_rate=0.05)
    summary, con = run_ingest(root / "inbox", root / "w.duckdb")
    con.close()
    return root / "w.duckdb", summary


@pytest.fixture
def scratch(generated):
    """A connection to the generated warehouse inside a transaction rolled back after the test (the other tests
    read the same warehouse)."""
    con = connect(generated[0])
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    finally:
        con.execute("ROLLBACK")
        con.close()


def test_a_new_warehouse_keys_only_its_small_bookkeeping_tables(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    try:
        keyed = {f"{schema}.{table}" for schema, table in con.execute(
            "SELECT DISTINCT schema_name, table_name FROM duckdb_constraints() "
            "WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE')").fetchall()}
    finally:
        con.close()
    assert keyed == {"ops.batch", "ops.file_sighting_cache", "ops.watermark", "ops.compiled_view"}
    assert not keyed & KEYLESS


def test_an_ingest_keeps_every_grain(generated):
    warehouse, summary = generated
    con = connect(warehouse, read_only=True)
    try:
        for grain in GRAINS:
            if grain is not STRUCTURE_FAILURE:  # holds only the faults fhir.resources rejects
                assert con.execute(f"SELECT count(*) FROM {grain.table}").fetchone()[0] > 0, grain.table
            assert repeated_keys(con, grain) == 0, grain
        batch = con.execute("SELECT max(batch_id) FROM ops.batch").fetchone()[0]
        assert records_with_several_outcomes(con, batch) == 0
        assert con.execute("SELECT count(*) FROM ops.record_outcome").fetchone()[0] == (
            summary["records_in"] - con.execute(
                "SELECT coalesce(sum(record_count), 0) FROM ops.quarantine WHERE scope IN ('file', 'line')"
            ).fetchone()[0])
    finally:
        con.close()


@pytest.mark.parametrize("grain", GRAINS, ids=lambda g: f"{g.table}.{g.name}")
def test_a_repeated_row_is_seen_where_no_key_refuses_it(scratch, grain):
    if grain is STRUCTURE_FAILURE:  # may hold no row (only what fhir.resources rejects): one to repeat
        scratch.execute(f"INSERT INTO {grain.table} (raw_id, structure_error) VALUES (1, 'a test failure')")
    scratch.execute(f"INSERT INTO {grain.table} SELECT * FROM {grain.table} LIMIT 1")
    assert repeated_keys(scratch, grain) == 1


def test_the_bounded_check_looks_at_what_a_run_wrote(scratch):
    last_file, last_bundle = high_water(scratch, FILE_ID), high_water(scratch, RAW_BUNDLE)
    assert repeated_keys(scratch, FILE_CONTENT, last_file) == 0
    # a new file id for content landed before: a run landing a copy (what the key on sha256 refused)
    scratch.execute(f"INSERT INTO ops.file_manifest SELECT * REPLACE ({last_file + 1} AS file_id) "
                    "FROM ops.file_manifest LIMIT 1")
    assert repeated_keys(scratch, FILE_CONTENT, last_file) == 1
    assert repeated_keys(scratch, FILE_ID, last_file) == 0
    # a bundle key written twice past the bound
    for _ in range(2):
        scratch.execute(f"INSERT INTO raw.bundle SELECT * REPLACE ({last_bundle + 1} AS bundle_key) "
                        "FROM raw.bundle LIMIT 1")
    assert repeated_keys(scratch, RAW_BUNDLE, last_bundle) == 1
    assert repeated_keys(scratch, RAW_BUNDLE, last_bundle + 1) == 0


def test_a_record_with_two_outcomes_is_counted_for_the_run_that_reported_it(scratch):
    batch = scratch.execute("SELECT max(batch_id) FROM ops.batch").fetchone()[0]
    scratch.execute(f"INSERT INTO {RECORD_OUTCOME.table} SELECT * REPLACE ('duplicate' AS outcome) "
                    "FROM ops.record_outcome ORDER BY raw_id DESC LIMIT 1")
    assert records_with_several_outcomes(scratch, batch) == 1
    assert records_with_several_outcomes(scratch, batch + 1) == 0  # a run that reported nothing wrote nothing
