"""The structure step checks each source's first file in full; ops.source_first_file keeps which file that is as
raw rows arrive, so a run reads its own rows, not the whole raw lake, to find it (pipelines/ingest/structure.py)."""

import shutil
from pathlib import Path

import pytest

from pipelines.generate import generate
from pipelines.ingest import structure
from pipelines.warehouse import connect, set_watermark
from tests.conftest import run_structure_step

#: each source's first file, by definition: the lowest file id with a FHIR row, over every raw row
EXPECTED = f"""SELECT coalesce(m.sender, m.kind) AS source, min(r.file_id) AS file_id
               FROM raw.resource r JOIN ops.file_manifest m USING (file_id)
               WHERE {structure._FHIR_ROWS} GROUP BY 1 ORDER BY 1"""


def _senders(inbox: Path) -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {}
    for path in sorted((inbox / "fhir").iterdir()):
        files.setdefault(path.name.split("_")[0], []).append(path)
    return files


def _first_files(warehouse: Path) -> tuple[list, list]:
    con = connect(warehouse, read_only=True)
    try:
        kept = con.execute(f"SELECT source, file_id FROM {structure.FIRST_FILES} ORDER BY 1").fetchall()
        return kept, con.execute(EXPECTED).fetchall()
    finally:
        con.close()


@pytest.fixture
def two_runs(tmp_path):
    """An inbox in two parts: run 1 without one sender and without a known sender's last file; run 2 brings
    both (a new sender's first file, a known sender's later file)."""
    inbox, held = tmp_path / "inbox", tmp_path / "held"
    generate(inbox, facilities=6, patients=24, seed=5, fault_rate=0.0)
    held.mkdir()
    senders = list(_senders(inbox).values())
    assert len(senders) >= 2 and len(senders[0]) >= 2
    for path in [*senders[-1], senders[0][-1]]:
        shutil.move(path, held / path.name)
    return inbox, held, senders[-1][0].name.split("_")[0]


@pytest.mark.parametrize("lagging", [False, True], ids=["kept up", "lagging (an older warehouse)"])
def test_first_files_are_kept_run_by_run(two_runs, tmp_path, lagging):
    inbox, held, new_sender = two_runs
    warehouse = tmp_path / "w.duckdb"
    run_structure_step(inbox, warehouse)
    kept, expected = _first_files(warehouse)
    assert kept == expected and new_sender not in dict(kept)
    if lagging:  # a warehouse from before the table, or whose last rows came through a partitioned merge
        con = connect(warehouse)
        con.execute(f"DELETE FROM {structure.FIRST_FILES}")
        set_watermark(con, structure.FIRST_FILES, 0)
        con.close()
    for path in held.iterdir():
        shutil.move(path, inbox / "fhir" / path.name)
    outcome = run_structure_step(inbox, warehouse)
    kept, expected = _first_files(warehouse)
    assert kept == expected and new_sender in dict(kept)
    con = connect(warehouse, read_only=True)
    try:  # the new sender's first file went to fhir.resources whole, beside the run's 1-in-50 sample
        first_file_rows = con.execute(
            f"SELECT count(*) FROM raw.resource r WHERE r.file_id = ? AND ({structure._FHIR_ROWS})",
            [dict(kept)[new_sender]]).fetchone()[0]
    finally:
        con.close()
    assert first_file_rows > 0 and outcome.by_fhir_resources >= first_file_rows
