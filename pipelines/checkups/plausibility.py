"""Plausibility of checkup results, over rows pivoted per person × checkup.

    plausibility_rules() -> list[RowRule]                   the rules, over pivot_checkups(rows)
    pivot_checkups(rows) -> pl.DataFrame                    one row per checkup (rows.CHECKUP_KEY + checkup_index)
    apply_plausibility(rows) -> (passing rows, failures)    what the ingest calls

The rules (ids in pipelines/rules.py):

- K-CHECKUP-ITEM   an item code that is not one of the 322 特定健診 codes (or no code at all).
- K-CHECKUP-RANGE  a numeric value outside the item's input limits (data/reference/checkup_items.csv, ours), or
                   a numeric item whose value is not a number — unless the sender flagged the value as outside
                   the measurable range (interpretation LX 入力下限以下 / HX 入力上限以上).
- K-CHECKUP-BMI    BMI differs from weight / (height in m)² by more than BMI_TOLERANCE kg/m². Senders round
                   height and weight to 0.1 and BMI to 0.1, which moves BMI by < 0.1; 0.5 leaves room for BMI
                   computed from unrounded measurements while catching swapped or mistyped fields.
- K-CHECKUP-BP     systolic below diastolic in the same reading (1回目, 2回目, その他).

What a failure removes is the items it is about, not the whole checkup: the unknown or out-of-range item, the
BMI (the measured height and weight stand; the derived value does not), or both pressures of the reading
(which of the two is wrong cannot be told). Values flagged LX/HX (limits, not measurements) and values already
out of range (already failed) are not used in the cross-item rules, so one bad value fails one rule.
"""

import polars as pl

from pipelines.checkups.items import item_frame
from pipelines.checkups.rows import CHECKUP_KEY, ROW_SCHEMA
from pipelines.validation.ig_rules import RowRule, failures

BMI_TOLERANCE = 0.5  # kg/m²
OUT_OF_RANGE_FLAGS = ("LX", "HX")
HEIGHT, WEIGHT, BMI = "9N001000000000001", "9N006000000000001", "9N011000000000001"
#: reading → (systolic code, diastolic code)
BP_READINGS = {"1回目": ("9A751000000000001", "9A761000000000001"),
               "2回目": ("9A752000000000001", "9A762000000000001"),
               "その他": ("9A755000000000001", "9A765000000000001")}
_PIVOTED = {"height": HEIGHT, "weight": WEIGHT, "bmi": BMI} | {
    f"{part}_{i}": code for i, pair in enumerate(BP_READINGS.values()) for part, code in zip(("sbp", "dbp"), pair)}
FAILURE_SCHEMA = {**{c: ROW_SCHEMA[c] for c in CHECKUP_KEY}, "item_code": pl.String, "rule_id": pl.String,
                  "message": pl.String}


def _fmt(expr: pl.Expr) -> pl.Expr:
    return expr.round(1).cast(pl.String)


def pivot_checkups(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per checkup (CHECKUP_KEY): checkup_index, the values the cross-item rules read (unflagged only),
    and the lists of unknown / out-of-range item codes with a readable description of each."""
    flagged = pl.col("interpretation").is_in(OUT_OF_RANGE_FLAGS).fill_null(False)
    value = pl.col("value_number")
    outside = (pl.col("reference_value_type") == "PQ") & ~flagged & (
        (value < pl.col("input_min")) | (value > pl.col("input_max"))
        | (value.is_null() & pl.col("value_text").is_not_null()))
    outside = outside.fill_null(False)
    unknown = pl.col("reference_name").is_null()
    code = pl.col("item_code").fill_null("(no code)")
    described = pl.when(value.is_null()).then(pl.format("{} {} is not a number", code, pl.col("value_text"))) \
        .otherwise(pl.format("{} {} {} outside {}–{}", code, _fmt(value), pl.col("value_unit").fill_null(""),
                             _fmt(pl.col("input_min")), _fmt(pl.col("input_max"))))
    return (
        rows.join(item_frame(), on="item_code", how="left")
        .group_by(CHECKUP_KEY, maintain_order=True)
        .agg(
            # the cross-item rules read measurements only: not LX/HX limits, not values already out of range
            *[value.filter((pl.col("item_code") == c) & ~flagged & ~outside).first().alias(name)
              for name, c in _PIVOTED.items()],
            code.filter(unknown).alias("unknown_items"),
            code.filter(outside).alias("out_of_range_items"),
            described.filter(outside).alias("out_of_range_detail"),
        )
        .with_row_index("checkup_index")
        .with_columns(pl.col("checkup_index").cast(pl.Int64))
    )


def _rules_with_items() -> list[tuple[RowRule, pl.Expr]]:
    """Each rule with the item codes a failure of it removes (an expression over the pivot)."""
    h, w, bmi = pl.col("height"), pl.col("weight"), pl.col("bmi")
    expected_bmi = w / (h / 100) ** 2
    rules = [
        (RowRule("K-CHECKUP-ITEM", pl.col("unknown_items").list.len() > 0, pl.col("unknown_items").list.join(", ")),
         pl.col("unknown_items")),
        (RowRule("K-CHECKUP-RANGE", pl.col("out_of_range_items").list.len() > 0,
                 pl.col("out_of_range_detail").list.join("; ")),
         pl.col("out_of_range_items")),
        (RowRule("K-CHECKUP-BMI", (h > 0) & ((bmi - expected_bmi).abs() > BMI_TOLERANCE),
                 pl.format("BMI {} but {} kg / ({} cm)² = {} (tolerance ±{})", _fmt(bmi), _fmt(w), _fmt(h),
                           _fmt(expected_bmi), pl.lit(BMI_TOLERANCE))),
         pl.concat_list(pl.lit(BMI))),
    ]
    for i, (reading, (systolic, diastolic)) in enumerate(BP_READINGS.items()):
        sbp, dbp = pl.col(f"sbp_{i}"), pl.col(f"dbp_{i}")
        rules.append((RowRule("K-CHECKUP-BP", sbp < dbp,
                              pl.format("{}: systolic {} mmHg below diastolic {} mmHg", pl.lit(reading),
                                        _fmt(sbp), _fmt(dbp))),
                      pl.concat_list(pl.lit(systolic), pl.lit(diastolic))))
    return rules


def plausibility_rules() -> list[RowRule]:
    """The rules, as RowRules over pivot_checkups(rows) (key column checkup_index)."""
    return [rule for rule, _ in _rules_with_items()]


def apply_plausibility(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(passing rows, failures): one failure row per checkup × item × broken rule, keyed by rows.CHECKUP_KEY
    + item_code (a null item_code fails as '(no code)'), with rule_id and a message naming no identifier."""
    if rows.is_empty():
        return rows, pl.DataFrame(schema=FAILURE_SCHEMA)
    pivot = pivot_checkups(rows)
    rules = _rules_with_items()
    broken = failures(pivot, [r for r, _ in rules], "checkup_index")
    if broken.is_empty():
        return rows, pl.DataFrame(schema=FAILURE_SCHEMA)
    items = pivot.select("checkup_index", *[expr.alias(f"_items_{i}") for i, (_, expr) in enumerate(rules)])
    pick = pl.when(pl.col("rule_order") == 0).then(pl.col("_items_0"))
    for i in range(1, len(rules)):
        pick = pick.when(pl.col("rule_order") == i).then(pl.col(f"_items_{i}"))
    failed = (
        broken.join(items, on="checkup_index").with_columns(item_code=pick).explode("item_code")
        .join(pivot.select("checkup_index", *CHECKUP_KEY), on="checkup_index")
        .select(list(FAILURE_SCHEMA))
    )
    passing = (rows.with_columns(_code=pl.col("item_code").fill_null("(no code)"))
               .join(failed.select(*CHECKUP_KEY, pl.col("item_code").alias("_code")).unique(),
                     on=[*CHECKUP_KEY, "_code"], how="anti", nulls_equal=True)
               .drop("_code"))
    return passing, failed
