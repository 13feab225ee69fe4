"""Blocking asset checks for the grain of the keyless per-file, per-bundle and per-record tables
(pipelines/warehouse/grain.py), over the rows the materialisation wrote."""

import dagster as dg
import duckdb

from pipelines.warehouse.grain import Grain, repeated_keys


def grain_check_spec(grain: Grain, asset_key: list[str]) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(grain.name, asset=asset_key, blocking=True,
                             description=f"{grain.table}: one row per {', '.join(grain.key)} (no key enforces it)")


def grain_check(con: duckdb.DuckDBPyConnection, grain: Grain, after: int,
                asset_key: list[str]) -> dg.AssetCheckResult:
    """`grain` over the rows past `after` (its `written_after` column's largest value before the run)."""
    repeated = repeated_keys(con, grain, after)
    return dg.AssetCheckResult(asset_key=asset_key, check_name=grain.name, passed=repeated == 0,
                               metadata={"table": grain.table, "repeated_keys": repeated})
