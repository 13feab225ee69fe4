"""Staging frames come from DuckDB in several chunks. polars 2.1 panicked ("assertion failed: i < self.len()")
when the IG rules of a clinical stage ran over such a frame: a 20,000-id window of a generated 6,000-patient
inbox (seed 7, fault rate 0.02) stopped the whole ingest in staging.condition. The rows below are 1,000 of that
window's Condition rows (generated data); split after row 26, as DuckDB delivered them, they reproduce it."""

from pathlib import Path

import polars as pl

from pipelines.ingest.resources import clinical_stages
from pipelines.validation import ig_rules

ROWS = Path(__file__).parent / "data" / "condition_window_rows.parquet"


def test_ig_rules_over_a_frame_in_two_chunks_give_the_one_chunk_verdicts():
    rows = pl.read_parquet(ROWS)
    in_two_chunks = pl.concat([rows.head(26), rows.slice(26)], rechunk=False)
    assert in_two_chunks.n_chunks() == 2
    rules = next(s for s in clinical_stages() if s.consumer == "staging.condition").rules()
    expected = ig_rules.failures(rows, rules, "raw_id")
    assert expected.height > 0  # the window breaks some rules: the formatting path runs
    assert ig_rules.failures(in_two_chunks, rules, "raw_id").equals(expected)
