"""Issue 8: no raw identifier anywhere. A generated sample (faults on, so quarantine holds rejected lines, bundles,
resources and archives) is ingested and reported on; then every column of every table in every schema, and every
report file, is searched for every insurance identifier, name, phone number and address in the generator's truth
(`_truth/patients.csv`). Zero hits. The same search over the inbox is the control: it must find thousands."""

import csv
import gzip
import io
import shutil
import unicodedata
import zipfile
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.cli import main as karte
from pipelines.config import load_settings
from pipelines.generate import generate
from pipelines.generate.common import to_full_width_digits
from pipelines.ingest import vault
from pipelines.ingest.checks import raw_identifier_hits
from pipelines.warehouse import raw_lake
from tests.conftest import run_ingest

SAMPLE = {"facilities": 8, "patients": 100, "seed": 7, "fault_rate": 0.05}
#: values this short are ordinary words or numbers (a 2-character family name is also a town or a facility name)
MIN_NEEDLE = 4


def _variants(value: str) -> set[str]:
    """As written, NFKC-normalised, and with every digit full-width (senders write either)."""
    nfkc = unicodedata.normalize("NFKC", value)
    return {value, nfkc, to_full_width_digits(nfkc)}


def needles_from_truth(patients_csv: Path) -> set[str]:
    """Every identifying value of every generated patient, in the forms a sender may write it."""
    needles: set[str] = set()
    with open(patients_csv, encoding="utf-8", newline="") as fh:
        for p in csv.DictReader(fh):
            number = p["insurance_id"].split(":")[2]
            values = [p["insurance_id"], p["name_text"], p["kana_text"], p["family"] + p["given"],
                      p["family_kana"] + p["given_kana"], p["family"] + "\u3000" + p["given"],
                      p["family_kana"] + "\u3000" + p["given_kana"], p["address"], p["postal_code"], p["phone"],
                      p["phone"].replace("-", ""), number]
            for value in values:
                needles |= {v for v in _variants(value) if len(v) >= MIN_NEEDLE}
            # the 被保険者証番号 alone only when it is long enough not to be any number (CDA and Coverage split it)
            needles -= {v for v in _variants(number) if len(unicodedata.normalize("NFKC", v)) < 7}
    return needles


def scan_warehouse(con: duckdb.DuckDBPyConnection, needles: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    """({schema.table.column: rows holding a needle}, {"tables": n, "columns": n, "rows": n}) over every column of
    every table in every schema, each cast to VARCHAR (JSON, lists and structs included). Aho-Corasick
    (polars str.contains_any): linear in the text whatever the number of needles."""
    patterns = sorted(needles)
    # raw.resource is a view over the raw lake's files (pipelines/warehouse/raw_lake.py): scanned as a table
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND NOT internal UNION ALL SELECT schema_name, view_name FROM duckdb_views() "
        "WHERE database_name = current_database() AND schema_name || '.' || view_name = ? ORDER BY ALL",
        [raw_lake.VIEW]).fetchall()
    hits, counted = {}, {"tables": 0, "columns": 0, "rows": 0}
    for schema, table in tables:
        columns = [c for (c,) in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = ? AND table_name = ? ORDER BY column_index", [schema, table]).fetchall()]
        text = con.sql("SELECT " + ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in columns)
                       + f' FROM "{schema}"."{table}"').pl()
        counts = text.select(pl.col(c).str.contains_any(patterns).sum() for c in columns).row(0)
        counted["tables"] += 1
        counted["columns"] += len(columns)
        counted["rows"] += text.height
        hits |= {f"{schema}.{table}.{c}": n for c, n in zip(columns, counts, strict=True) if n}
    return hits, counted


def _texts(path: Path) -> list[tuple[str, str]]:
    """(name, text) of a file, opened the way a reader would: gzip and ZIP (xlsx) members unpacked, Parquet as
    CSV; a damaged archive (an injected fault) as its bytes."""
    data = path.read_bytes()
    if path.suffix == ".parquet":
        frame = pl.read_parquet(path)
        return [(str(path), frame.select(pl.all().cast(pl.String)).write_csv())]
    try:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                return [(f"{path}!{m}", zf.read(m).decode("utf-8", errors="replace")) for m in zf.namelist()]
    except (OSError, EOFError, zipfile.BadZipFile):
        pass
    return [(str(path), data.decode("utf-8", errors="replace"))]


def scan_files(root: Path, needles: set[str], skip: str | None = None) -> tuple[dict[str, int], int]:
    """({file or member: distinct needles found}, files scanned) under root, but for paths with a part starting
    with `skip`."""
    files = [p for p in sorted(root.rglob("*"))
             if p.is_file() and not (skip and any(part.startswith(skip) for part in p.relative_to(root).parts))]
    texts = [t for p in files for t in _texts(p)]
    frame = pl.DataFrame(texts, schema={"name": pl.String, "text": pl.String}, orient="row")
    found = frame.select("name", pl.col("text").str.extract_many(sorted(needles), overlapping=True)
                         .list.unique().list.len().alias("n"))
    return dict(found.filter(pl.col("n") > 0).iter_rows()), len({t[0].split("!")[0] for t in texts})


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    root = tmp_path_factory.mktemp("leak")
    inbox, warehouse, reports = root / "inbox", root / "warehouse.duckdb", root / "reports"
    generate(inbox, **SAMPLE)
    summary, con = run_ingest(inbox, warehouse)
    con.close()
    for report in (["quality"], ["audit"], ["checkups"], ["adoption"]):
        assert karte(["report", *report, "--warehouse", str(warehouse), "--out", str(reports)]) == 0
    return inbox, warehouse, reports, summary


def test_no_raw_identifier_in_any_table_or_report(ingested):
    inbox, warehouse, reports, summary = ingested
    needles = needles_from_truth(inbox / "_truth" / "patients.csv")
    assert len(needles) > 1000
    assert summary["records_quarantined"] > 0  # quarantine holds rejected records, and was searched too
    con = duckdb.connect(str(warehouse), read_only=True)
    hits, counted = scan_warehouse(con, needles)
    schemas = {s for (s,) in con.execute("SELECT DISTINCT schema_name FROM duckdb_tables() WHERE NOT internal")
               .fetchall()}
    con.close()
    assert {"raw", "staging", "core", "ops"} <= schemas  # shared holds macros only; reports.* are Dagster assets
    assert counted["columns"] > 300 and counted["rows"] > 5000
    assert hits == {}
    report_hits, report_files = scan_files(reports, needles)
    assert report_files >= 10
    assert report_hits == {}


def test_the_search_finds_the_identifiers_in_the_inbox(ingested):
    """The control: the same search over what senders sent finds every kind of value, in thousands of places."""
    inbox, *_ = ingested
    needles = needles_from_truth(inbox / "_truth" / "patients.csv")
    hits, files = scan_files(inbox, needles, skip="_")  # not the truth file, nor the manifest
    assert files > 100 and sum(hits.values()) > 1000
    assert any("/checkups/" in name for name in hits) and any("/consent/" in name for name in hits)


def test_vault_tokens_read_back_with_the_key_only(ingested):
    inbox, warehouse, *_ = ingested
    key = load_settings().pseudonym_key
    con = duckdb.connect(str(warehouse), read_only=True)
    token = con.execute("SELECT resource->>'$.identifier[1].value' FROM raw.resource "
                        "WHERE resource_type = 'Patient' ORDER BY raw_id LIMIT 1").fetchone()[0]
    con.close()
    with open(inbox / "_truth" / "patients.csv", encoding="utf-8", newline="") as fh:
        ids = {p["insurance_id"] for p in csv.DictReader(fh)}
    assert token.startswith(vault.PREFIX) and vault.reveal(token, key) in ids
    with pytest.raises(vault.VaultError):
        vault.reveal(token, b"another key of enough length......")


def test_the_warehouse_check_sees_every_schema_and_unsealed_raw(ingested, tmp_path):
    """The asset check ops/run_summary:no_raw_identifiers: clean after ingest; a revealed identifier planted in
    staging or ops, or an unsealed value in raw, is found."""
    _, warehouse, *_ = ingested
    copy = tmp_path / "planted.duckdb"
    shutil.copy(warehouse, copy)
    key = load_settings().pseudonym_key
    con = duckdb.connect(str(copy))
    assert raw_identifier_hits(con, pseudonym_key=key) == {}
    token = con.execute("SELECT resource->>'$.name[0].text' FROM raw.resource WHERE resource_type = 'Patient' "
                        "ORDER BY raw_id LIMIT 1").fetchone()[0]
    name = vault.reveal(token, key)
    con.execute("CREATE TABLE ops.planted AS SELECT ? AS note", [name])
    # the raw lake's files are written once: the leak is the first Patient row replaced by a changed copy
    con.execute("""CREATE TEMP TABLE leaked AS
                   SELECT * REPLACE (json_merge_patch(resource, '{"telecom": [{"value": "03-1234-5678"}]}')::VARCHAR
                                     AS resource)
                   FROM raw.resource WHERE raw_id = (SELECT min(raw_id) FROM raw.resource WHERE resource_type = 'Patient')""")
    raw_lake.delete_where(con, "raw_id IN (SELECT raw_id FROM leaked)")
    raw_lake.append(con, "SELECT * FROM leaked")
    hits = raw_identifier_hits(con, pseudonym_key=key)
    con.close()
    assert hits == {"ops.planted.note": 1, "raw.resource.resource (Patient values outside the vault)": 1}
