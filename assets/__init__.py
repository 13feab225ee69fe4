"""Dagster assets, one folder per layer (= Dagster group = asset key prefix = DuckDB schema)."""
