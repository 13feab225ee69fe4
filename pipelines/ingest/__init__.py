"""Ingest: inbox files → landing manifest → raw → staging → core, each step incremental and atomic."""
