"""connect(): the warehouse attached with small row groups, one DuckDB instance per file and process."""

import contextlib

import duckdb
import pytest

from pipelines.warehouse import connect, sibling_cursor, transaction, worker_connection
from pipelines.warehouse.connection import ROW_GROUP_ROWS


def test_tables_are_written_in_row_groups_of_row_group_rows(tmp_path):
    with contextlib.closing(connect(tmp_path / "w.duckdb")) as con:
        con.execute("CREATE TABLE ops.numbers AS SELECT range AS n, repeat('診', 40) AS text FROM range(50000)")
        con.execute("CHECKPOINT")
        sizes = [n for (n,) in con.execute(
            "SELECT count FROM pragma_storage_info('ops.numbers') WHERE column_id = 0 GROUP BY row_group_id, count "
            "ORDER BY row_group_id").fetchall()]
    assert max(sizes) == ROW_GROUP_ROWS < 50_000  # DuckDB's default would hold all 50,000 in one
    assert sum(sizes) == 50_000 and len(sizes) == -(-50_000 // ROW_GROUP_ROWS)


def test_two_connections_to_one_file_share_it_and_either_may_close_last(tmp_path):
    path = tmp_path / "w.duckdb"
    first = connect(path)
    second = connect(path)  # a second instance attaching the same file would be refused
    with transaction(first):
        first.execute("INSERT INTO ops.batch VALUES (1, now()::TIMESTAMP, NULL, '受信箱')")
    assert second.execute("SELECT inbox FROM ops.batch").fetchall() == [("受信箱",)]
    second.close()
    assert first.execute("SELECT count(*) FROM ops.batch").fetchone() == (1,)
    first.close()
    # every connection closed: the file is free for any other opener, plain DuckDB included
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as plain:
        assert plain.execute("SELECT inbox FROM ops.batch").fetchall() == [("受信箱",)]
    with contextlib.closing(connect(path)) as again:
        assert again.execute("SELECT count(*) FROM ops.batch").fetchone() == (1,)


def test_a_connection_whose_first_sibling_was_closed_still_opens_more(tmp_path):
    path = tmp_path / "w.duckdb"
    first = connect(path)
    second = connect(path)
    first.close()  # closes `second` too (a cursor of it): DuckDB closes a connection's cursors with it
    with pytest.raises(duckdb.ConnectionException):
        second.execute("SELECT 1")
    with contextlib.closing(connect(path)) as third:
        assert third.execute("SELECT count(*) FROM ops.batch").fetchone() == (0,)


def test_memory_databases_stay_separate(tmp_path):
    one, two = connect(":memory:"), connect(":memory:")
    one.execute("INSERT INTO ops.batch VALUES (1, now()::TIMESTAMP, NULL, 'a')")
    assert two.execute("SELECT count(*) FROM ops.batch").fetchone() == (0,)


@pytest.mark.parametrize("read_only", [False, True])
def test_sibling_and_worker_connections_see_the_warehouse_in_utc(tmp_path, read_only):
    path = tmp_path / "w.duckdb"
    connect(path).close()
    with (contextlib.closing(connect(path, read_only=read_only)) as con,
          contextlib.closing(sibling_cursor(con)) as sibling, worker_connection(con) as worker):
        for other in (sibling, worker):
            assert other.execute("SELECT count(*) FROM ops.batch").fetchone() == (0,)
            assert other.execute("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)
