"""Staging of clinical resources: flatten through the view, resolve the patient and institution from
the bundle, apply the IG rules and the pandera contract over the whole batch, then append the passing
rows to staging.<table> and quarantine the rest — one transaction per stage run."""

from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import polars as pl

from pipelines.ingest.bundles import RAW_CONSUMER
from pipelines.ingest.flatten import flatten
from pipelines.ingest.pending import raw_pending
from pipelines.ingest.pseudonym import patient_keys
from pipelines.ingest.quarantine import quarantine_resources
from pipelines.ingest.raw_windows import first_bundle, raw_windows
from pipelines.ingest.tables import append
from pipelines.ingest.vault import reveal_series
from pipelines.validation import contracts, ig_rules
from pipelines.validation.terminology import load_terminology
from pipelines.warehouse import get_watermark, set_watermark, transaction

#: raw columns carried into every flattened row (provenance + bundle context)
CARRY = ["raw_id", "bundle_key", "file_id", "is_clins", "bundle_institution", "bundle_patient_key",
         "patient_full_url", "patient_resource_id", "document_key", "structure_error"]

LAB_PROFILE = "JP_Observation_LabResult_eCS"


@dataclass(frozen=True)
class ResourceStage:
    table: str  # staging table (and view) name
    resource_type: str
    rules: Callable[[], list[ig_rules.RowRule]]
    classify: Callable[[pl.DataFrame], pl.DataFrame]  # adds category and table-specific derived columns
    contract: type
    route: str = "true"  # extra SQL predicate over r (raw.resource) and b (staging.bundle)

    @property
    def consumer(self) -> str:
        return f"staging.{self.table}"


def _source_sql(stage: ResourceStage, lo: int, hi: int, bundles_from: int = 0) -> str:
    return f"""
        SELECT r.raw_id, r.resource, r.bundle_key, r.file_id, b.is_clins, b.institution_number AS bundle_institution,
               b.patient_key AS bundle_patient_key, b.patient_full_url, b.patient_resource_id, b.document_key,
               sf.structure_error
        FROM raw.resource r JOIN staging.bundle b USING (bundle_key)
        LEFT JOIN staging.structure_failure sf USING (raw_id)
        WHERE b.accepted AND b.bundle_key >= {bundles_from} AND r.resource_type = '{stage.resource_type}'
          AND r.raw_id > {lo} AND r.raw_id <= {hi}
          AND ({stage.route})
          AND r.raw_id NOT IN (SELECT raw_id FROM ops.record_outcome WHERE raw_id > {lo})
    """


def resolve_context(frame: pl.DataFrame, pseudonym_key: bytes) -> pl.DataFrame:
    """Patient and institution of each resource, from its own fields checked against its bundle.

    The subject must be the bundle's Patient — by fullUrl, by `Patient/<id>`, or by the same insurance
    identifier — otherwise patient_key stays null and K-SUBJECT rejects the row.
    """
    subject_key = patient_keys(reveal_series(frame["subject_member_id"], pseudonym_key), pseudonym_key)
    ref = pl.col("subject_reference")
    same_patient = (
        (ref == pl.col("patient_full_url")).fill_null(False)
        | (ref == pl.format("Patient/{}", pl.col("patient_resource_id"))).fill_null(False)
        | (subject_key == pl.col("bundle_patient_key")).fill_null(False)
    )
    return frame.with_columns(
        patient_key=pl.when(same_patient).then(pl.col("bundle_patient_key")),
        institution_number=pl.coalesce("institution_number_ext", "bundle_institution"),
        # The IG wants resource identifiers unique, but senders (and the IG's own examples) reuse one
        # identifier for several resources of a bundle. Those are not versions of each other: each keeps
        # its place as occurrence 1, 2, … of the identifier within the bundle.
        identity_occurrence=pl.col("raw_id").rank("ordinal").over(["bundle_key", "resource_identifier"])
        .cast(pl.Int64),
    )


def flags(frame: pl.DataFrame) -> pl.DataFrame:
    tags = pl.col("tags").fill_null(pl.lit([], dtype=pl.List(pl.String)))
    return frame.with_columns(
        flag_lts=tags.list.contains("LTS"),
        flag_uninformed=tags.list.contains("UNINFORMED"),
        flag_undelivered=tags.list.contains("UNDELIVERED"),
    )


def stage_resources(con: duckdb.DuckDBPyConnection, stage: ResourceStage, pseudonym_key: bytes) -> tuple[int, int]:
    """Returns (rows staged, records quarantined)."""
    staged = quarantined = 0
    for lo, hi in raw_windows(con, get_watermark(con, stage.consumer), get_watermark(con, RAW_CONSUMER)):
        pending = hi > lo and raw_pending(con, stage.resource_type, lo, hi)
        frame = flatten(con, stage.table, _source_sql(stage, lo, hi, first_bundle(con, lo)), CARRY) if pending else None
        with transaction(con):
            if frame is not None and frame.height:
                frame = resolve_context(frame, pseudonym_key)
                failed = ig_rules.failures(frame, stage.rules(), "raw_id")
                passing = flags(frame.join(failed.select("raw_id"), on="raw_id", how="anti"))
                passing = stage.classify(passing)
                contract_failed = contracts.contract_failures(stage.contract, passing)
                passing = passing.join(contract_failed.select("raw_id"), on="raw_id", how="anti")
                context = frame.select("raw_id", "institution_number", "resource_identifier")
                all_failed = pl.concat([failed, contract_failed]).join(context, on="raw_id", how="left")
                quarantined += quarantine_resources(con, all_failed)
                staged += append(con, f"staging.{stage.table}", contracts.select_columns(stage.contract, passing))
            set_watermark(con, stage.consumer, hi)
    return staged, quarantined


# --- the clinical stages --------------------------------------------------------------------------------

def _classify_condition(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(category=pl.lit("condition"),
                           is_suspected=(pl.col("verification_status") == "unconfirmed").fill_null(False))


def _classify_allergy(df: pl.DataFrame) -> pl.DataFrame:
    # 薬剤禁忌 is the medication category; food / environment / absent are その他アレルギー等.
    return df.with_columns(category=pl.when(pl.col("allergy_category") == "medication")
                           .then(pl.lit("drug-contraindication")).otherwise(pl.lit("allergy")))


def _classify_observation(df: pl.DataFrame) -> pl.DataFrame:
    term = load_terminology()
    code = pl.coalesce("infection_code", "core_labo_code", "jlac10_code")
    is_infection = pl.col("infection_code").is_not_null() | code.is_in(list(term.infection_labo))
    return df.with_columns(
        jlac10=code,
        clins_item=pl.coalesce(code.replace_strict(term.all_labo_items, default=None), pl.col("core_labo_item")),
        category=pl.when(is_infection).then(pl.lit("infection")).otherwise(pl.lit("lab-result")),
    )


def _classify_medication(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(category=pl.lit("prescription"),
                           yj_code=pl.col("yj_codes").list.first(),
                           general_order_code=pl.col("general_order_codes").list.first())


def clinical_stages() -> list[ResourceStage]:
    term = load_terminology()
    return [
        ResourceStage("condition", "Condition", ig_rules.condition_rules, _classify_condition,
                      contracts.StagedCondition),
        ResourceStage("allergy", "AllergyIntolerance", ig_rules.allergy_rules, _classify_allergy,
                      contracts.StagedAllergy),
        ResourceStage("observation", "Observation",
                      lambda: ig_rules.observation_rules(set(term.core_labo), set(term.infection_labo)),
                      _classify_observation, contracts.StagedObservation,
                      # In documents only lab-profiled Observations are 検査/感染症; the rest are supporting.
                      # A checkup document's Observations are checkup staging's alone (whatever their profile),
                      # so the two stages never claim one record and may run at once.
                      route=f"b.document_category IS DISTINCT FROM 'checkup' AND (b.is_clins OR "
                            f"json_extract_string(r.resource, '$.meta.profile') LIKE '%{LAB_PROFILE}%')"),
        ResourceStage("medication_request", "MedicationRequest",
                      lambda: ig_rules.medication_rules(set(term.general_order_codes)),
                      _classify_medication, contracts.StagedMedicationRequest),
    ]
