"""raw.resource as Parquet files beside the warehouse (pipelines/warehouse/raw_lake.py): committed files only,
crash leftovers removed, older warehouses moved in, moved and copied warehouses still read their rows."""

import contextlib
import shutil

import duckdb
import pytest

from pipelines.warehouse import connect, raw_lake, transaction

ROWS = """SELECT i AS raw_id, 7 AS file_id, 1 AS batch_id, NULL AS bundle_key, i AS line_no, NULL AS entry_index,
                 NULL AS full_url, 'Observation' AS resource_type,
                 '{"resourceType":"Observation","code":{"text":"血圧 ' || i || '"}}' AS resource
          FROM range(?, ?) t(i)"""


def _rows(con) -> list[tuple]:
    return con.execute("SELECT raw_id, resource FROM raw.resource ORDER BY raw_id").fetchall()


def test_a_new_warehouse_has_an_empty_raw_resource_of_the_documented_columns(tmp_path):
    with contextlib.closing(connect(tmp_path / "w.duckdb")) as con:
        assert _rows(con) == []
        assert con.execute("SELECT column_name, data_type FROM duckdb_columns() "
                           "WHERE schema_name = 'raw' AND table_name = 'resource' ORDER BY column_index"
                           ).fetchall() == list(raw_lake.COLUMNS)
        assert raw_lake.last_raw_id(con) == 0


def test_rows_appear_when_their_transaction_commits_and_a_rolled_back_file_is_never_read(tmp_path):
    with contextlib.closing(connect(tmp_path / "w.duckdb")) as con:
        with transaction(con):
            assert raw_lake.append(con, ROWS, [1, 4]) == 3
        with pytest.raises(RuntimeError, match="disk full"), transaction(con):
            raw_lake.append(con, ROWS, [4, 6])
            assert raw_lake.last_raw_id(con) == 5  # visible inside its own transaction
            raise RuntimeError("disk full")
        assert [r for r, _ in _rows(con)] == [1, 2, 3]
        assert raw_lake.last_raw_id(con) == 3
        folder = raw_lake.lake_dir(con)
        assert len(list(folder.glob("*.parquet"))) == 2  # the rolled-back write's file is still there, unlisted
        assert len(raw_lake.remove_unlisted(con)) == 1
        assert [p.as_posix() for p in folder.glob("*.parquet")] == raw_lake.listed_files(con)
        assert _rows(con)[0] == (1, '{"resourceType":"Observation","code":{"text":"血圧 1"}}')


def test_rows_without_an_id_or_a_file_are_refused_before_anything_is_listed(tmp_path):
    with contextlib.closing(connect(tmp_path / "w.duckdb")) as con:
        with pytest.raises(ValueError, match="1 of 2 raw rows lack one of raw_id, file_id"):
            one_without_file = "CASE WHEN raw_id = 2 THEN NULL ELSE file_id END AS file_id"
            raw_lake.append(con, f"SELECT * REPLACE ({one_without_file}) FROM ({ROWS})", [1, 3])
        assert raw_lake.listed_files(con) == [] and list(raw_lake.lake_dir(con).glob("*")) == []


def test_delete_where_replaces_only_the_files_that_hold_such_rows(tmp_path):
    with contextlib.closing(connect(tmp_path / "w.duckdb")) as con:
        raw_lake.append(con, ROWS, [1, 4])
        raw_lake.append(con, ROWS, [4, 7])
        first, second = raw_lake.listed_files(con)
        assert raw_lake.delete_where(con, "raw_id IN ?", [[5, 6]]) == 2
        assert [r for r, _ in _rows(con)] == [1, 2, 3, 4]
        assert raw_lake.listed_files(con)[0] == first and second not in raw_lake.listed_files(con)


def test_a_warehouse_from_before_the_lake_has_its_raw_table_moved_into_it(tmp_path):
    path = tmp_path / "old.duckdb"
    with contextlib.closing(duckdb.connect(str(path))) as old:
        old.execute("CREATE SCHEMA raw")
        # the first layout's JSON column, with kana, kanji and full-width digits
        old.execute("""CREATE TABLE raw.resource (raw_id BIGINT NOT NULL, file_id BIGINT NOT NULL,
                       batch_id BIGINT NOT NULL, bundle_key BIGINT, line_no INTEGER NOT NULL, entry_index INTEGER,
                       full_url VARCHAR, resource_type VARCHAR, resource JSON NOT NULL)""")
        old.execute("""INSERT INTO raw.resource VALUES
                         (2, 1, 1, 10, 1, 1, 'urn:uuid:b', 'Patient',
                          '{"resourceType":"Patient","name":[{"text":"ヤマダ　タロウ"}]}'),
                         (1, 1, 1, 10, 1, 0, 'urn:uuid:a', 'Composition',
                          '{"resourceType":"Composition","title":"診療情報提供書１２"}')""")
    with contextlib.closing(connect(path)) as con:
        assert con.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = 'raw' "
                           "AND table_name = 'resource'").fetchone() == ("VIEW",)
        assert _rows(con) == [(1, '{"resourceType":"Composition","title":"診療情報提供書１２"}'),
                              (2, '{"resourceType":"Patient","name":[{"text":"ヤマダ　タロウ"}]}')]
        assert raw_lake.last_raw_id(con) == 2
    with contextlib.closing(connect(path)) as again:  # a second open finds nothing to move
        assert len(raw_lake.listed_files(again)) == 1 and len(_rows(again)) == 2


def test_a_warehouse_moved_with_its_folder_is_re_pointed_and_a_copy_of_the_file_alone_reads_the_original(tmp_path):
    origin = tmp_path / "a" / "w.duckdb"
    with contextlib.closing(connect(origin)) as con:
        raw_lake.append(con, ROWS, [1, 3])
    moved = tmp_path / "b" / "w.duckdb"
    moved.parent.mkdir()
    shutil.copy(origin, moved)
    shutil.copytree(origin.with_name("w.duckdb.raw"), moved.with_name("w.duckdb.raw"))
    copy = tmp_path / "c" / "w.duckdb"
    copy.parent.mkdir()
    shutil.copy(origin, copy)
    shutil.rmtree(origin.with_name("w.duckdb.raw").parent / "w.duckdb.raw")  # the original's files are gone
    with contextlib.closing(connect(moved)) as con:
        assert [r for r, _ in _rows(con)] == [1, 2]
        assert all(p.startswith(moved.with_name("w.duckdb.raw").as_posix()) for p in raw_lake.listed_files(con))
    with contextlib.closing(connect(copy)) as con, pytest.raises(duckdb.IOException):
        _rows(con)  # a copy of the file alone, its original's files gone: a clear I/O error, not silent emptiness


def test_a_copy_of_the_file_alone_reads_the_original_files_and_writes_its_own_beside_itself(tmp_path):
    origin, copy = tmp_path / "w.duckdb", tmp_path / "copy.duckdb"
    with contextlib.closing(connect(origin)) as con:
        raw_lake.append(con, ROWS, [1, 3])
    shutil.copy(origin, copy)
    with contextlib.closing(connect(copy)) as con:
        raw_lake.append(con, ROWS, [3, 4])
        assert [r for r, _ in _rows(con)] == [1, 2, 3]
        assert raw_lake.remove_unlisted(con) == []  # never the original's files
    with contextlib.closing(connect(origin)) as con:
        assert [r for r, _ in _rows(con)] == [1, 2]


def test_each_in_memory_warehouse_keeps_its_raw_files_in_a_folder_of_its_own():
    first, second = connect(":memory:"), connect(":memory:")
    with contextlib.closing(first), contextlib.closing(second):
        raw_lake.append(first, ROWS, [1, 3])
        raw_lake.append(second, ROWS, [5, 6])
        assert raw_lake.lake_dir(first) != raw_lake.lake_dir(second)
        assert raw_lake.remove_unlisted(second) == []
        assert [r for r, _ in _rows(first)] == [1, 2] and [r for r, _ in _rows(second)] == [5]


def test_dagster_shows_the_raw_view_as_the_table_it_stands_for(tmp_path):
    from assets.metadata import declared_schema, table_metadata

    with contextlib.closing(connect(tmp_path / "w.duckdb")) as con:
        raw_lake.append(con, ROWS, [1, 4])
        shown = table_metadata(con, "raw.resource", rows_written=3)
    assert shown["dagster/row_count"] == 3
    assert [c.name for c in shown["dagster/column_schema"].columns] == [name for name, _ in raw_lake.COLUMNS]
    assert [c.name for c in declared_schema("raw.resource")["dagster/column_schema"].columns] == [
        name for name, _ in raw_lake.COLUMNS]


def test_outside_a_transaction_a_write_lists_its_file_and_replaces_the_view_together(tmp_path, monkeypatch):
    with contextlib.closing(connect(tmp_path / "w.duckdb")) as con:
        raw_lake.append(con, ROWS, [1, 3])
        real_refresh = raw_lake.refresh_view

        def fails(c):
            raise duckdb.IOException("disk full")

        monkeypatch.setattr(raw_lake, "refresh_view", fails)
        with pytest.raises(duckdb.IOException, match="disk full"):
            raw_lake.append(con, ROWS, [3, 5])
        monkeypatch.setattr(raw_lake, "refresh_view", real_refresh)
        assert raw_lake.last_raw_id(con) == 2 and [r for r, _ in _rows(con)] == [1, 2]  # neither listed nor read
        with transaction(con):  # inside the caller's transaction it takes part, and the caller's stays usable
            raw_lake.append(con, ROWS, [3, 4])
            assert con.execute("SELECT count(*) FROM raw.resource").fetchone() == (3,)
        assert raw_lake.last_raw_id(con) == 3


def test_many_small_files_are_compacted_into_runs_in_raw_id_order(tmp_path):
    with contextlib.closing(connect(tmp_path / "w.duckdb")) as con:
        for start in range(1, 501, 100):  # five files of 100 rows
            raw_lake.append(con, ROWS, [start, start + 100])
        before = _rows(con)
        assert raw_lake.compact(con, max_files=5, rows=250) == 0  # not more than the limit: left alone
        assert raw_lake.compact(con, max_files=3, rows=250) == 2  # runs [1, 2], [3, 4], [5]
        assert con.execute("SELECT row_count FROM raw.resource_file ORDER BY first_raw_id").fetchall() == [
            (200,), (200,), (100,)]
        assert _rows(con) == before
        files = raw_lake.listed_files(con)
        assert sorted(p.as_posix() for p in raw_lake.lake_dir(con).iterdir()) == sorted(files)  # old ones deleted
        assert con.execute("""SELECT count(*) FROM (
                                  SELECT raw_id, lag(raw_id) OVER (ORDER BY filename, file_row_number) AS before
                                  FROM read_parquet(?, filename = true, file_row_number = true))
                              WHERE raw_id < before""", [files]).fetchone() == (0,)


def test_the_raw_step_compacts_the_lake_once_it_lists_too_many_files(tmp_path, monkeypatch):
    from pipelines.generate import generate
    from tests.conftest import run_ingest

    generate(tmp_path / "inbox", patients=12, seed=5)
    monkeypatch.setattr(raw_lake, "MAX_FILES", 2)
    monkeypatch.setattr("pipelines.ingest.raw.GROUP_BYTES", 64 * 1024)  # many small groups, a file each
    summary, con = run_ingest(tmp_path / "inbox", tmp_path / "w.duckdb")
    with contextlib.closing(con):
        assert len(raw_lake.listed_files(con)) == 1  # the sample's few thousand rows: one compacted file
        assert con.execute("SELECT count(*), count(DISTINCT raw_id), max(raw_id) FROM raw.resource").fetchone() == (
            summary["records_in"],) * 3
