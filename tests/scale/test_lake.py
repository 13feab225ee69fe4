"""The lake's hand-over files (pipelines/partitioned/lake.py) stay within the ingest's DuckDB cap however large a
shard is: a 173 MB shard (one sender's day at 16 × the sample) ran out of the 384 MB cap while DuckDB wrote its raw
JSON in Parquet row groups of 122,880 rows. Here the same at a smaller scale: ≈ 70 MB of JSON under a 128 MB cap."""

import duckdb
import pytest

from pipelines.partitioned import lake
from pipelines.partitioned.plan import Partition, Shard

ROWS, FILES = 60_000, 40


@pytest.fixture
def scratch(tmp_path):
    """A scratch warehouse's raw.resource of ROWS records of ≈ 1.2 kB of JSON each, in FILES files of one sender,
    under a 128 MB cap, with its shard's file partitions registered."""
    con = duckdb.connect(str(tmp_path / "scratch.duckdb"))
    con.execute("CREATE SCHEMA raw")
    con.execute("CREATE TABLE raw.resource (raw_id BIGINT NOT NULL, file_id BIGINT NOT NULL, bundle_key BIGINT, "
                "resource VARCHAR)")
    con.execute(f"""INSERT INTO raw.resource
                    SELECT i, 1 + i % {FILES}, i // 8,
                           '{{"resourceType":"Observation","id":"' || i || '","note":"' || repeat(md5(i::VARCHAR), 36)
                           || '"}}'
                    FROM range({ROWS}) t(i)""")
    con.execute("SET memory_limit = '128MB'; SET threads = 2")
    shard = Shard(1, 0, (Partition("2026-11-27", "1311111111", tuple(range(1, FILES + 1)), 0),), str(tmp_path))
    lake.register_file_partitions(con, shard)
    yield con, shard, tmp_path / "lake"
    con.close()


def _row_groups(con, dest) -> list[int]:
    return [n for (n,) in con.execute(
        f"SELECT any_value(row_group_num_rows) FROM parquet_metadata('{dest.as_posix()}/raw.resource/**/*.parquet') "
        "GROUP BY file_name, row_group_id").fetchall()]


def test_a_shard_over_the_cap_is_handed_over_in_row_groups_that_fit_it(scratch):
    con, shard, dest = scratch
    assert con.execute("SELECT sum(length(resource)) FROM raw.resource").fetchone()[0] > 64 * 1024**2
    lake.export_tables(con, ["raw.resource"], dest, shard)
    groups = _row_groups(con, dest)
    assert sum(groups) == ROWS and max(groups) <= lake.PARQUET_ROW_GROUP_ROWS
    back = con.execute(f"SELECT count(*), sum(hash(resource)), max(sender)::VARCHAR FROM read_parquet("
                       f"'{dest.as_posix()}/raw.resource/**/*.parquet', hive_partitioning = true)").fetchone()
    assert back == (ROWS, con.execute("SELECT sum(hash(resource)) FROM raw.resource").fetchone()[0], "1311111111")


def test_duckdbs_default_row_groups_run_out_of_the_same_cap(scratch, monkeypatch):
    """The reason for the setting: without it the same export fails (if DuckDB's writer stops needing a whole
    row group in memory, this test says the setting can go)."""
    con, shard, dest = scratch
    monkeypatch.setattr(lake, "PARQUET_ROW_GROUP_ROWS", 122_880)
    with pytest.raises(duckdb.OutOfMemoryException):
        lake.export_tables(con, ["raw.resource"], dest, shard)
