"""connect(): the storage format of a new warehouse, two connections to one file, sibling cursors."""

import contextlib

import duckdb
import pytest

from pipelines.warehouse import cap_duckdb, connect, raw_lake, sibling_cursor, transaction


def test_two_connections_to_one_file_share_it_and_either_may_close_last(tmp_path):
    path = tmp_path / "w.duckdb"
    first = connect(path)
    second = connect(path)
    with transaction(first):
        first.execute("INSERT INTO ops.batch (batch_id, started_at, finished_at, inbox) VALUES (1, now()::TIMESTAMP, NULL, '受信箱')")
    assert second.execute("SELECT inbox FROM ops.batch").fetchall() == [("受信箱",)]
    second.close()
    assert first.execute("SELECT count(*) FROM ops.batch").fetchone() == (1,)
    first.close()
    # every connection closed: the file is free for any other opener, plain DuckDB included
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as plain:
        assert plain.execute("SELECT inbox FROM ops.batch").fetchall() == [("受信箱",)]
    with contextlib.closing(connect(path)) as again:
        assert again.execute("SELECT count(*) FROM ops.batch").fetchone() == (1,)


@pytest.mark.parametrize("read_only", [False, True])
def test_a_sibling_cursor_sees_the_warehouse_in_utc(tmp_path, read_only):
    path = tmp_path / "w.duckdb"
    connect(path).close()
    with contextlib.closing(connect(path, read_only=read_only)) as con:
        con.execute("SET GLOBAL TimeZone = 'Asia/Tokyo'")  # what a new connection would start with
        with contextlib.closing(sibling_cursor(con)) as sibling:
            assert sibling.execute("SELECT count(*) FROM ops.batch").fetchone() == (0,)
            assert sibling.execute("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)
            assert con.cursor().execute("SELECT current_setting('TimeZone')").fetchone() == ("Asia/Tokyo",)


def test_a_new_warehouse_is_in_the_v1_2_format_and_its_raw_json_in_lz4_then_zstd_parquet(tmp_path):
    with contextlib.closing(connect(tmp_path / "w.duckdb")) as con:
        with transaction(con):
            raw_lake.append(con, """SELECT range AS raw_id, 1 AS file_id, 1 AS batch_id, NULL AS bundle_key,
                                           range AS line_no, NULL AS entry_index, 'urn:uuid:' || (range % 50) AS full_url,
                                           'Observation' AS resource_type,
                                           '{"resourceType":"Observation","code":{"text":"血圧 ' || range || '"}}' AS resource
                                    FROM range(1, 5001)""")
        con.execute("CREATE TABLE core.note AS SELECT '血圧 ' || range AS text FROM range(5000)")
        con.execute("CHECKPOINT")
        fresh_codecs = _resource_codecs(con)
        # a second file, then compaction down to one: the staged data settles into zstd
        with transaction(con):
            raw_lake.append(con, """SELECT 5001 AS raw_id, 1 AS file_id, 1 AS batch_id, NULL AS bundle_key, 1 AS line_no,
                                           NULL AS entry_index, NULL AS full_url, 'Observation' AS resource_type,
                                           '{"resourceType":"Observation"}' AS resource""")
        assert raw_lake.compact(con, max_files=1) == 1
        settled_codecs = _resource_codecs(con)
        assert con.execute("SELECT count(*), max(raw_id) FROM raw.resource").fetchone() == (5001, 5001)
        table_codecs = {c for (c,) in con.execute(
            "SELECT DISTINCT compression FROM pragma_storage_info('core.note') WHERE compression <> 'Constant'"
        ).fetchall()}
    assert fresh_codecs == {"LZ4_RAW"}  # read back by the same run's staging steps: fast to decompress
    assert settled_codecs == {"ZSTD"}
    assert "DICT_FSST" not in table_codecs  # the newer format's string codec (slower reports)


def _resource_codecs(con) -> set[str]:
    return {c for (c,) in con.execute(
        "SELECT DISTINCT compression FROM parquet_metadata(?) WHERE path_in_schema = 'resource'",
        raw_lake.listed_files(con)).fetchall()}


def test_a_warehouse_in_a_newer_storage_format_still_opens(tmp_path):
    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path), config={"storage_compatibility_version": "latest"}).close()
    with contextlib.closing(connect(path)) as con:
        assert con.execute("SELECT count(*) FROM ops.batch").fetchone() == (0,)


def test_an_ingest_connection_does_not_cache_the_parquet_it_reads(tmp_path):
    with contextlib.closing(connect(tmp_path / "w.duckdb")) as con:
        assert con.execute("SELECT current_setting('enable_external_file_cache')").fetchone() == (True,)
        cap_duckdb(con, "256MB", threads=1)
        assert con.execute("SELECT current_setting('enable_external_file_cache'), current_setting('threads')"
                           ).fetchone() == (False, 1)


def test_every_cursor_of_an_ingest_connection_keeps_the_lake_footers_and_not_its_data(tmp_path):
    """The steps run on sibling cursors (lanes): a setting made with a plain SET held for the first cursor only,
    and the lanes' windowed reads of raw.resource parsed every lake footer again (3.3 against 1.6 ms a statement
    at 16 × the sample)."""
    with contextlib.closing(connect(tmp_path / "w.duckdb")) as con:
        cap_duckdb(con, "256MB", threads=1)
        lane = sibling_cursor(con)
        for cursor in (con, lane, con.cursor()):
            assert cursor.execute("SELECT current_setting('parquet_metadata_cache'), "
                                  "current_setting('enable_external_file_cache')").fetchone() == (True, False)
        lane.close()

