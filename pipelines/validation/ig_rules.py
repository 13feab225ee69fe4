"""The implementation guide's rules (domain_spec §1.3–1.7) as polars expressions over flattened rows.

A rule is a boolean expression that is true where a row breaks it, plus an expression naming the
offending value. `failures()` evaluates a list of rules over a whole frame at once (no per-row Python)
and returns one row per (row, broken rule). Rule ids come from pipelines/rules.py.
"""

from dataclasses import dataclass

import polars as pl

from pipelines.fhir import systems
from pipelines.rules import RULES

#: 10-digit 医療機関番号. Stricter than the IG regex `[0-4][0-9][1-3][0-9]{7}`, which admits
#: prefectures 00 and 48–49 that do not exist.
INSTITUTION_NUMBER_RE = r"^(0[1-9]|[1-3][0-9]|4[0-7])[1-3][0-9]{7}$"
BUNDLE_IDENTIFIER_RE = r"^[0-4][0-9][1-3][0-9]{7}\^20[2-3][0-9]\^[A-Za-z0-9\-]{1,36}$"
#: R1013, as the IG writes it: no ':', '^', whitespace or full-width space inside 記号/番号.
MEMBER_ID_RE = "^[0-9]{8}:[^:^\\s\u3000]*:[^:^\\s\u3000]*:([0-9]{2})?$"


@dataclass(frozen=True)
class RowRule:
    rule_id: str
    fails: pl.Expr
    detail: pl.Expr

    def __post_init__(self):
        assert self.rule_id in RULES, self.rule_id


def _text(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.String).fill_null("(none)")


def _shape(value: pl.Expr) -> pl.Expr:
    """An identifier's shape (digits → 9, other characters → x): enough to fix it, nothing to leak."""
    return value.str.replace_all(r"[0-9０-９]", "9").str.replace_all(r"[^9:\s]", "x")


def _strip_versions(col: str) -> pl.Expr:
    return pl.col(col).list.eval(pl.element().str.replace(r"\|.*$", ""))


def _claims(col: str, profile: str) -> pl.Expr:
    return _strip_versions(col).list.contains(profile).fill_null(False)


def failures(frame: pl.DataFrame, rules: list[RowRule], key: str) -> pl.DataFrame:
    """One row per (frame[key], broken rule) with a human message, in rule order."""
    if frame.is_empty() or not rules:
        return pl.DataFrame(schema={key: frame.schema.get(key, pl.Int64), "rule_id": pl.String,
                                    "message": pl.String, "rule_order": pl.Int32})
    # One chunk: over a frame in several chunks (as DuckDB hands them over) polars 2.1 panics with "assertion
    # failed: i < self.len()" filtering and formatting the string columns of some windows
    # (tests/validation/test_multichunk_frames.py). Every rule's verdict in one pass; only the broken rules then
    # filter and format (most rows break none).
    frame = frame.rechunk()
    broken = frame.select(rule.fails.fill_null(False).alias(str(order)) for order, rule in enumerate(rules))
    if broken.height != frame.height:  # constant verdicts only: filter rule by rule
        broken = frame.select(pl.repeat(True, frame.height).alias(str(order)) for order in range(len(rules)))
        masks = [rule.fails.fill_null(False) for rule in rules]
    else:
        masks = [broken[str(order)] for order in range(len(rules))]
    parts = [
        frame
        .filter(mask)
        .select(
            pl.col(key),
            pl.lit(rule.rule_id).alias("rule_id"),
            pl.format("{}: {}", pl.lit(RULES[rule.rule_id].title), _text(rule.detail))
            .fill_null(RULES[rule.rule_id].title).alias("message"),
            pl.lit(order, dtype=pl.Int32).alias("rule_order"),
        )
        for order, (rule, mask) in enumerate(zip(rules, masks, strict=True)) if broken[str(order)].any()
    ]
    if not parts:
        return pl.DataFrame(schema={key: frame.schema[key], "rule_id": pl.String, "message": pl.String,
                                    "rule_order": pl.Int32})
    return pl.concat(parts)


# --- bundle envelope (frame: staging bundle columns + first-entry facts + patient columns) ---------------

def bundle_rules() -> list[RowRule]:
    clins = pl.col("bundle_profile") == systems.BUNDLE_CLINS
    accepted = pl.col("expected_type").is_not_null()
    tag = pl.col("resource_type_tags")
    member_ids = pl.col("member_ids")
    from_patient = accepted & (pl.col("member_id_from") == "patient").fill_null(False)
    return [
        RowRule("K-EMPTY-BUNDLE", pl.col("entry_count") == 0, pl.lit("Bundle.entry is empty")),
        RowRule("K-FHIR-STRUCTURE", pl.col("patient_structure_error").is_not_null(),
                pl.format("Patient: {}", pl.col("patient_structure_error"))),
        RowRule("K-PROFILE", ~accepted, pl.col("profiles").list.join(", ").fill_null("(no meta.profile)")),
        RowRule("K-BUNDLE-TYPE", accepted & (pl.col("bundle_type") != pl.col("expected_type")).fill_null(True),
                pl.format("type {} for a {} bundle", _text(pl.col("bundle_type")), pl.col("expected_type"))),
        RowRule("R2152", accepted & pl.col("identifier_rule").fill_null(True)
                & ((pl.col("identifier_system") != systems.BUNDLE_IDENTIFIER).fill_null(True)
                                     | ~pl.col("identifier_value").str.contains(BUNDLE_IDENTIFIER_RE).fill_null(False)),
                pl.format("{} | {}", _text(pl.col("identifier_system")), _text(pl.col("identifier_value")))),
        RowRule("R02142", clins & ((tag.list.len() != 1).fill_null(True)
                                   | ~tag.list.first().is_in(["AllergyIntolerance", "Condition", "Observation"])),
                tag.list.join(", ").fill_null("(no BundleResourceType tag)")),
        RowRule("R02143", clins & (tag.list.len() == 1).fill_null(False)
                & ((pl.col("entry_types").list.slice(1).list.set_difference(tag).list.len() > 0)
                   | (pl.col("entry_count") < 2)),
                pl.format("tag {} but entries {}", tag.list.first(),
                          pl.col("entry_types").list.slice(1).list.unique().list.sort().list.join(", "))),
        RowRule("R0211", accepted & (pl.col("entry_count") > 0)
                & (pl.col("entry_types").list.first() != pl.col("expected_first")),
                pl.format("first entry is {}, expected {}", pl.col("entry_types").list.first(),
                          pl.col("expected_first"))),
        RowRule("K-DOC-TYPE", accepted & (pl.col("expected_doc_types").list.len() > 0)
                & ~pl.col("expected_doc_types").list.contains(pl.col("composition_type_code")).fill_null(False),
                pl.format("Composition.type {} (expected {})", _text(pl.col("composition_type_code")),
                          pl.col("expected_doc_types").list.join(" or "))),
        RowRule("K-DOC-SUBJECT", accepted & pl.col("patient_raw_id").is_null(), pl.lit("no Patient entry")),
        RowRule("R0212", accepted & pl.col("patient_raw_id").is_not_null()
                & ~(_claims("patient_profiles", systems.PATIENT_ECS) | _claims("patient_profiles", systems.PATIENT_ECS_CLINS)),
                pl.col("patient_profiles").list.join(", ").fill_null("(no meta.profile)")),
        RowRule("R1012", from_patient & pl.col("patient_raw_id").is_not_null()
                & (member_ids.list.len() != 1).fill_null(True),
                pl.format("{} JP_Insurance_memberID identifiers", member_ids.list.len().fill_null(0))),
        RowRule("R1013", from_patient & (member_ids.list.len() == 1).fill_null(False)
                & ~member_ids.list.first().str.contains(MEMBER_ID_RE),
                # The value itself is a raw identifier: show its shape, never the value.
                pl.format("value shaped {}", _shape(member_ids.list.first()))),
        RowRule("K-CHECKUP-SUBJECT", accepted & (pl.col("member_id_from") == "coverage")
                & ~pl.col("coverage_member_id").str.contains(MEMBER_ID_RE).fill_null(False),
                pl.format("insured person shaped {}", _shape(pl.col("coverage_member_id")).fill_null("(no Coverage)"))),
        RowRule("R1113", accepted & pl.col("name_texts").list.eval(pl.element().str.contains("\u3000")).list.any()
                .fill_null(False),
                pl.lit("full-width space in Patient.name.text")),
    ]


# --- resources (frame: view columns + bundle context: is_clins, bundle_institution, patient_key) ---------

def structure_rule() -> RowRule:
    """The fhir.resources verdict (staging.structure_failure), carried as column structure_error."""
    return RowRule("K-FHIR-STRUCTURE", pl.col("structure_error").is_not_null(), pl.col("structure_error"))


def _common(resource_type: str, code: str) -> list[RowRule]:
    clins = pl.col("is_clins")
    inst = pl.col("institution_number_ext")
    inst_ok = inst.str.contains(INSTITUTION_NUMBER_RE).fill_null(False)
    rules = [
        structure_rule(),
        RowRule("K-ENTRY-PROFILE", ~_claims("profiles", systems.ENTRY_PROFILES[resource_type]),
                pl.col("profiles").list.join(", ").fill_null("(no meta.profile)")),
        RowRule("K-RESOURCE-ID", pl.col("resource_identifier").is_null(),
                pl.format("{} id {}", pl.lit(resource_type), _text(pl.col("resource_id")))),
        RowRule("K-SUBJECT", pl.col("patient_key").is_null(), _text(pl.col("subject_reference"))),
        RowRule("R9011", clins & ~pl.col("has_institution_ext").fill_null(False), pl.lit("no JP_eCS_InstitutionNumber")),
        RowRule("R9012", pl.col("has_institution_ext").fill_null(False) & ~inst_ok, _text(inst)),
        RowRule("K-INSTITUTION-MISMATCH", inst_ok & pl.col("bundle_institution").is_not_null()
                & (inst != pl.col("bundle_institution")),
                pl.format("{} in a bundle from {}", inst, pl.col("bundle_institution"))),
    ]
    if resource_type in ("Condition", "Observation"):
        rules += [
            RowRule(f"R9013{code}", clins & ~pl.col("has_contained_encounter").fill_null(False),
                    pl.lit("no contained Encounter")),
            RowRule(f"R9014{code}", clins & ~pl.col("has_department").fill_null(False),
                    pl.lit("no JP_eCS_Department extension")),
        ]
    allowed = ["LTS", "UNINFORMED", "UNDELIVERED"] if resource_type == "Condition" else ["LTS"]
    rules.append(RowRule("K-TAG", pl.col("tags").list.eval(~pl.element().is_in(allowed)).list.any().fill_null(False),
                         pl.col("tags").list.join(", ")))
    return rules


def condition_rules() -> list[RowRule]:
    return _common("Condition", "C") + [
        RowRule("K-CONDITION-ONSET", pl.col("is_clins") & pl.col("onset").is_null(), pl.lit("no onsetDateTime")),
        RowRule("K-CONDITION-CODE", pl.col("medis_code").is_null(), _text(pl.col("code_text"))),
        RowRule("K-CONDITION-VERIFICATION", pl.col("verification_status").is_null(), pl.lit("no verificationStatus")),
    ]


def allergy_rules() -> list[RowRule]:
    return _common("AllergyIntolerance", "A") + [
        RowRule("K-ALLERGY-CATEGORY", pl.col("allergy_category") == "biologic", pl.col("allergy_category")),
        RowRule("K-ALLERGY-CODE", pl.col("code_text").is_null(), pl.lit("no code.text")),
    ]


def observation_rules(core_labo: set[str], infection_labo: set[str]) -> list[RowRule]:
    listed = list(core_labo | infection_labo)
    clins_code = pl.coalesce("core_labo_code", "infection_code")
    return _common("Observation", "O") + [
        RowRule("K-OBS-CATEGORY", ~pl.col("category_codes").list.contains("laboratory").fill_null(False),
                pl.col("category_codes").list.join(", ").fill_null("(no category)")),
        RowRule("K-OBS-CODE", pl.all_horizontal(pl.col(c).is_null() for c in
                                                ("jlac10_code", "core_labo_code", "infection_code", "uncoded_code")),
                _text(pl.col("code_text"))),
        RowRule("K-TERM-JLAC10", clins_code.is_not_null() & ~clins_code.is_in(listed), clins_code),
    ]


def medication_rules(general_order_codes: set[str]) -> list[RowRule]:
    n_codes = (pl.col("yj_codes").list.len().fill_null(0) + pl.col("general_order_codes").list.len().fill_null(0)
               + pl.col("nocoded_codes").list.len().fill_null(0))
    general = pl.col("general_order_codes").list.first()
    return _common("MedicationRequest", "M") + [
        RowRule("R3010", n_codes != 1,
                pl.format("{} YJ, {} 一般名, {} NOCODED codings", pl.col("yj_codes").list.len().fill_null(0),
                          pl.col("general_order_codes").list.len().fill_null(0),
                          pl.col("nocoded_codes").list.len().fill_null(0))),
        RowRule("K-TERM-GENERAL-ORDER", (n_codes == 1) & general.is_not_null()
                & ~general.is_in(list(general_order_codes)), general),
        RowRule("K-MED-DOSAGE", pl.col("usage_any_code").is_null(), pl.lit("no dosageInstruction.timing.code")),
    ]
