"""Shared fixtures for the checkup tests: a generated sample, read back through the checkup readers, and a small
DuckDB with core.checkup_result / core.patient built from it the way the ingest will (pseudonymised)."""

import csv
from pathlib import Path

import duckdb
import orjson
import polars as pl
import pytest

from pipelines.checkups.archive import read_archive
from pipelines.checkups.cda import CheckupFormatError, parse_checkup_document
from pipelines.checkups.fhir import bundles_rows
from pipelines.checkups.rows import ROW_SCHEMA
from pipelines.config import DEVELOPMENT_PSEUDONYM_KEY, REFERENCE_DIR
from pipelines.fhir import systems as S
from pipelines.generate import generate
from pipelines.ingest.pseudonym import patient_key

CHECKUP_PROFILES = {S.BUNDLE_ECHECKUP, S.BUNDLE_ECHECKUP_CLINS}
KEY = DEVELOPMENT_PSEUDONYM_KEY.encode("utf-8")
SAMPLE = {"facilities": 12, "patients": 600, "seed": 11}


def checkup_bundles(root: Path) -> list[tuple[str, dict]]:
    """(relative path, bundle) of every eCheckup bundle in root/fhir (they are always plain .json)."""
    found = []
    for path in sorted((root / "fhir").glob("*.json")):
        try:
            bundle = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue  # an injected FHIR fault (never on a checkup bundle)
        if S.strip_version((bundle.get("meta", {}).get("profile") or [None])[0]) in CHECKUP_PROFILES:
            found.append((f"fhir/{path.name}", bundle))
    return found


def read_sample(root: Path) -> tuple[pl.DataFrame, dict[str, tuple[str, str]], dict[tuple[str, str], str]]:
    """(rows of every readable checkup with a `file` column, archive errors by file, document errors by
    (file, member))."""
    found = checkup_bundles(root)
    rows = bundles_rows([b for _, b in found])
    # a document is known by institution + identifier; the file name starts with the institution
    files = pl.DataFrame({"institution_number": [rel[5:15] for rel, _ in found],
                          "document_id": [b["entry"][0]["resource"]["identifier"]["value"] for _, b in found],
                          "file": [rel for rel, _ in found]})
    frames = [rows.join(files, on=["institution_number", "document_id"], how="left")]
    archive_errors, document_errors = {}, {}
    for path in sorted((root / "checkups").glob("*")):
        rel = f"checkups/{path.name}"
        read = read_archive(path)
        if read.error:
            archive_errors[rel] = read.error
            continue
        for member, text in read.documents:
            try:
                rows = parse_checkup_document(text)
            except CheckupFormatError as exc:
                document_errors[(rel, member)] = (exc.rule_id, exc.message)
                continue
            frames.append(pl.DataFrame(rows, schema=ROW_SCHEMA).with_columns(file=pl.lit(rel)))
    return pl.concat(frames), archive_errors, document_errors


def prefecture_codes() -> dict[str, str]:
    with open(REFERENCE_DIR / "prefectures.csv", encoding="utf-8", newline="") as fh:
        return {r["prefecture_name_ja"]: r["prefecture_code"] for r in csv.DictReader(fh)}


def warehouse_from(rows: pl.DataFrame, patients_csv: Path) -> duckdb.DuckDBPyConnection:
    """core.checkup_result (common rows, member_id hashed to patient_key) and core.patient, in memory."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA core")
    keys = {m: patient_key(m, KEY) for m in rows["member_id"].unique().to_list()}
    result = rows.drop("file").with_columns(
        patient_key=pl.col("member_id").replace_strict(keys), category=pl.lit("checkup"),
        raw_id=pl.int_range(pl.len(), dtype=pl.Int64)).drop("member_id")
    con.register("result_frame", result)
    con.execute("CREATE TABLE core.checkup_result AS SELECT * FROM result_frame")
    codes = prefecture_codes()
    with open(patients_csv, encoding="utf-8", newline="") as fh:
        people = [(patient_key(r["insurance_id"], KEY), r["gender"], int(r["birth_date"][:4]),
                   int(r["birth_date"][5:7]), next(c for n, c in codes.items() if r["address"].startswith(n)))
                  for r in csv.DictReader(fh)]
    con.execute("CREATE TABLE core.patient (patient_key VARCHAR PRIMARY KEY, gender VARCHAR, birth_year INTEGER, "
                "birth_month INTEGER, prefecture_code VARCHAR)")
    con.executemany("INSERT INTO core.patient VALUES (?, ?, ?, ?, ?)", people)
    return con


@pytest.fixture(scope="session")
def clean_sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("checkups_clean")
    generate(root, fault_rate=0.0, **SAMPLE)
    return root


@pytest.fixture(scope="session")
def clean_rows(clean_sample) -> pl.DataFrame:
    rows, archive_errors, document_errors = read_sample(clean_sample)
    assert not archive_errors and not document_errors, (archive_errors, document_errors)
    return rows


@pytest.fixture(scope="session")
def faulty_sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("checkups_faulty")
    generate(root, fault_rate=0.05, facilities=8, patients=200, seed=5)
    return root
