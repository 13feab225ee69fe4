"""Scale-out ingest: the same pipeline steps as `pipelines.ingest.run.ingest`, split into map steps per
(arrival day × sender) partition that run in parallel (worker processes, Dagster's multiprocess or dask
executor) and reduce steps that merge their partitioned Parquet into the one DuckDB warehouse, with exactly the
ids and rows a single-process run gives (docs/scale_out.md)."""
