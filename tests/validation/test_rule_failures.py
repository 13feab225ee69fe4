"""ig_rules.failures evaluates every rule's verdict in one pass and formats only the broken rules: the result
is the rule-by-rule one — same rows, order, messages and dtypes."""

import polars as pl

from pipelines.rules import RULES
from pipelines.validation import ig_rules
from pipelines.validation.ig_rules import RowRule


def rule_by_rule(frame: pl.DataFrame, rules: list[RowRule], key: str) -> pl.DataFrame:
    return pl.concat([
        frame.filter(rule.fails.fill_null(False)).select(
            pl.col(key), pl.lit(rule.rule_id).alias("rule_id"),
            pl.format("{}: {}", pl.lit(RULES[rule.rule_id].title), ig_rules._text(rule.detail))
            .fill_null(RULES[rule.rule_id].title).alias("message"),
            pl.lit(order, dtype=pl.Int32).alias("rule_order"))
        for order, rule in enumerate(rules)])


FRAME = pl.DataFrame({"raw_id": [1, 2, 3, 4], "code": ["A", None, "B", "C"], "n": [1, 5, None, 9]})
RULES_ = [
    RowRule("K-SUBJECT", pl.col("code").is_null(), pl.lit("no code")),
    RowRule("K-RESOURCE-ID", pl.col("n") > 4, pl.col("n")),
    RowRule("K-TAG", pl.col("code") == "Z", pl.col("code")),  # broken by no row
    RowRule("K-ENTRY-PROFILE", pl.col("n").is_null() | (pl.col("code") == "C"), pl.col("code")),
]


def test_one_pass_equals_rule_by_rule():
    found = ig_rules.failures(FRAME, RULES_, "raw_id")
    assert found.equals(rule_by_rule(FRAME, RULES_, "raw_id"))
    assert found["rule_order"].to_list() == [0, 1, 1, 3, 3]


def test_no_broken_rule_gives_the_empty_frame_of_the_same_schema():
    clean = FRAME.filter(pl.col("raw_id") == 1)
    found = ig_rules.failures(clean, RULES_, "raw_id")
    assert found.is_empty()
    assert found.schema == rule_by_rule(clean, RULES_, "raw_id").schema


def test_constant_verdicts():
    rules = [RowRule("K-SUBJECT", pl.lit(True), pl.lit("always")), RowRule("K-TAG", pl.lit(False), pl.lit("never"))]
    assert ig_rules.failures(FRAME, rules, "raw_id").equals(rule_by_rule(FRAME, rules, "raw_id"))
