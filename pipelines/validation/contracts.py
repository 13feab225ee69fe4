"""Data contracts of the staging tables (pandera, polars backend). They document every column and are
enforced on every batch: a row that breaks one is quarantined with rule K-CONTRACT, naming the column.

The IG's own rules run earlier (ig_rules.py); contracts are the last guard on types, domains and
formats before a row can reach core.
"""

import datetime
import functools
import re

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData

from pipelines.fhir.systems import INFORMATION_KINDS
from pipelines.validation.ig_rules import INSTITUTION_NUMBER_RE

#: FHIR dateTime / date / instant as text (partial dates allowed, as FHIR allows them)
FHIR_DATETIME_RE = r"^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$"
PATIENT_KEY_RE = r"^[0-9a-f]{64}$"


def _datetime(description: str, nullable: bool = True):
    return pa.Field(nullable=nullable, str_matches=FHIR_DATETIME_RE, description=description)


class _Provenance(pa.DataFrameModel):
    raw_id: int = pa.Field(description="raw.resource row this came from (provenance)")
    bundle_key: int = pa.Field(nullable=True, description="raw.bundle it arrived in")
    file_id: int = pa.Field(description="ops.file_manifest file it arrived in")

    class Config:
        strict = False  # extra view columns are dropped by select_columns, not rejected


class _Clinical(_Provenance):
    patient_key: str = pa.Field(str_matches=PATIENT_KEY_RE, description="HMAC-SHA256 pseudonym of the patient")
    institution_number: str = pa.Field(str_matches=INSTITUTION_NUMBER_RE, description="10-digit 医療機関番号 of the sender")
    resource_identifier: str = pa.Field(str_length={"min_value": 1, "max_value": 256},
                                        description="resourceInstance-identifier (identity within the institution)")
    identity_occurrence: int = pa.Field(ge=1, description="1, 2, … when a bundle reuses one identifier for several resources")
    document_key: str = pa.Field(nullable=True, description="institution|Composition identifier when sent in a document")
    flag_lts: bool = pa.Field(description="LTS 長期保存")
    flag_uninformed: bool = pa.Field(description="UNINFORMED 未告知: never in patient-facing output")
    flag_undelivered: bool = pa.Field(description="UNDELIVERED 未提供: never shared")
    last_updated: str = _datetime("meta.lastUpdated (the newest version of an identity wins)")


class StagedCondition(_Clinical):
    """staging.condition — one row per submitted JP_Condition_eCS that passed the IG rules."""

    category: str = pa.Field(isin=["condition"], description="urn:karte:information-kind")
    medis_code: str = pa.Field(str_matches=r"^[0-9]{8}$", description="MEDIS 病名管理番号 (8 digits)")
    icd10_code: str = pa.Field(nullable=True, str_matches=r"^[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$",
                               description="ICD-10 (2013)")
    code_text: str = pa.Field(nullable=True, description="病名 as written by the sender")
    clinical_status: str = pa.Field(nullable=True, isin=["active", "recurrence", "relapse", "inactive", "remission",
                                                          "resolved"])
    verification_status: str = pa.Field(isin=["unconfirmed", "provisional", "differential", "confirmed", "refuted",
                                              "entered-in-error"])
    is_suspected: bool = pa.Field(description="疑い病名 (verificationStatus unconfirmed)")
    department_code: str = pa.Field(nullable=True, description="SS-MIX2 診療科 code")
    onset: str = _datetime("onsetDateTime")
    abatement: str = _datetime("abatementDateTime")
    recorded_date: str = _datetime("recordedDate")


class StagedAllergy(_Clinical):
    """staging.allergy — one row per submitted JP_AllergyIntolerance_eCS that passed the IG rules."""

    category: str = pa.Field(isin=["drug-contraindication", "allergy"],
                             description="drug-contraindication (薬剤禁忌, category medication) or allergy")
    allergy_category: str = pa.Field(nullable=True, isin=["medication", "food", "environment"])
    allergen_system: str = pa.Field(nullable=True, description="JFAGY allergen code system")
    allergen_code: str = pa.Field(nullable=True)
    code_text: str = pa.Field(description="allergen as written by the sender")
    clinical_status: str = pa.Field(nullable=True, isin=["active", "inactive", "resolved"])
    verification_status: str = pa.Field(nullable=True, isin=["unconfirmed", "confirmed", "refuted", "entered-in-error"])
    criticality: str = pa.Field(nullable=True, isin=["low", "high", "unable-to-assess"])
    onset: str = _datetime("onsetDateTime")
    recorded_date: str = _datetime("recordedDate")


class StagedObservation(_Clinical):
    """staging.observation — one row per submitted JP_Observation_LabResult_eCS that passed the IG rules."""

    category: str = pa.Field(isin=["lab-result", "infection"], description="検査 or 感染症")
    jlac10: str = pa.Field(nullable=True, str_matches=r"^[0-9A-Z]{17}$",
                           description="JLAC10 17桁, whichever system URI carried it")
    clins_item: str = pa.Field(nullable=True, description="CLINS list item (ALB, HbA1c-NGSP, HBs-AG-RESULT…)")
    local_code: str = pa.Field(nullable=True, description="the hospital's own code")
    code_text: str = pa.Field(nullable=True)
    status: str = pa.Field(isin=["registered", "preliminary", "final", "amended", "corrected", "cancelled",
                                 "entered-in-error", "unknown"])
    value_number: float = pa.Field(nullable=True)
    value_unit: str = pa.Field(nullable=True, description="unit as sent (CLINS sends no UCUM code)")
    value_code: str = pa.Field(nullable=True)
    value_text: str = pa.Field(nullable=True)
    interpretation: str = pa.Field(nullable=True)
    specimen_code: str = pa.Field(nullable=True, description="JP_ObservationSampleMaterialCode (023 血清…)")
    department_code: str = pa.Field(nullable=True)
    effective: str = _datetime("検体採取日時")
    issued: str = _datetime("報告登録日時")


class StagedMedicationRequest(_Clinical):
    """staging.medication_request — one row per JP_MedicationRequest_eCS (inside documents) that passed."""

    category: str = pa.Field(isin=["prescription"])
    yj_code: str = pa.Field(nullable=True, str_matches=r"^[0-9A-Z]{12}$", description="YJ code (12 characters)")
    general_order_code: str = pa.Field(nullable=True, description="一般名処方マスタ code")
    medication_text: str = pa.Field(nullable=True, description="drug as printed on the prescription")
    usage_code: str = pa.Field(nullable=True, description="JAMI 16桁 用法")
    usage_text: str = pa.Field(nullable=True)
    dose_value: float = pa.Field(nullable=True, ge=0)
    dose_unit: str = pa.Field(nullable=True)
    duration_days: float = pa.Field(nullable=True, ge=0)
    rp_number: str = pa.Field(nullable=True)
    status: str = pa.Field(isin=["active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped",
                                 "draft", "unknown"])
    category_code: str = pa.Field(nullable=True, description="MERIT-9 OHP 外来 / IHP 入院 / DCG 退院")
    authored_on: str = _datetime("authoredOn")


class StagedPatient(pa.DataFrameModel):
    """staging.patient — one row per accepted bundle's Patient: pseudonym and demographics only."""

    raw_id: int = pa.Field(description="raw.resource row of the Patient entry")
    bundle_key: int = pa.Field(description="raw.bundle the Patient arrived in")
    patient_key: str = pa.Field(str_matches=PATIENT_KEY_RE, description="HMAC-SHA256 pseudonym")
    gender: str = pa.Field(isin=["male", "female", "other", "unknown"], description="Patient.gender (1.. in JP_Patient_eCS)")
    birth_date: str = _datetime("Patient.birthDate (1.. in JP_Patient_eCS)", nullable=False)
    prefecture_name: str = pa.Field(nullable=True, description="都道府県 from the address; the rest is dropped")
    last_updated: str = _datetime("meta.lastUpdated", nullable=False)

    class Config:
        strict = False


class StagedBundle(pa.DataFrameModel):
    """staging.bundle — one row per submitted bundle with the envelope verdict."""

    bundle_key: int = pa.Field(unique=True)
    file_id: int = pa.Field()
    bundle_profile: str = pa.Field(nullable=True, description="meta.profile without |version")
    bundle_identifier: str = pa.Field(nullable=True, description="医療機関番号^西暦^ID")
    institution_number: str = pa.Field(nullable=True, description="the sender, from the bundle identifier")
    is_clins: bool = pa.Field(description="JP_Bundle_CLINS collection (vs a document)")
    document_category: str = pa.Field(nullable=True,
                                      isin=["referral", "discharge-summary", "patient-summary", "checkup"])
    patient_key: str = pa.Field(nullable=True, str_matches=PATIENT_KEY_RE)
    accepted: bool = pa.Field(description="false: the whole bundle is in ops.quarantine")

    class Config:
        strict = False


class StagedDocument(_Provenance):
    """staging.document — one row per accepted document bundle's Composition."""

    document_key: str = pa.Field(description="institution_number|Composition.identifier")
    patient_key: str = pa.Field(str_matches=PATIENT_KEY_RE)
    institution_number: str = pa.Field(str_matches=INSTITUTION_NUMBER_RE)
    document_identifier: str = pa.Field()
    category: str = pa.Field(isin=["referral", "discharge-summary", "patient-summary", "checkup"])
    type_code: str = pa.Field(isin=["57133-1", "18842-5", "56447-6", "53576-5", "JPGCHKUP01"])
    subtype_code: str = pa.Field(nullable=True)
    title: str = pa.Field(nullable=True)
    status: str = pa.Field(isin=["preliminary", "final", "amended", "entered-in-error"])
    document_date: str = _datetime("Composition.date")
    version_number: str = pa.Field(nullable=True)
    last_updated: str = _datetime("meta.lastUpdated")
    recipient_reference: str = pa.Field(nullable=True, description="紹介先: entry reference of the section 910 "
                                        "Organization (resolved to recipient_institution in core)")


class StagedCheckupResult(pa.DataFrameModel):
    """staging.checkup_result — one row per person × checkup × item, from eCheckup FHIR or 特定健診 XML."""

    raw_id: int = pa.Field(description="raw record: the Observation, or the person's CDA document")
    bundle_key: int = pa.Field(nullable=True, description="raw.bundle of a FHIR report (null for XML)")
    file_id: int = pa.Field(description="ops.file_manifest file it arrived in")
    patient_key: str = pa.Field(str_matches=PATIENT_KEY_RE, description="HMAC-SHA256 pseudonym of the examinee")
    category: str = pa.Field(isin=["checkup"])
    sex: str = pa.Field(nullable=True, description="as sent (male / female)")
    birth_date: str = _datetime("birth date (kept in staging for core.patient, not in core)")
    checkup_date: datetime.date = pa.Field(description="健診実施日")
    program: str = pa.Field(description="健診プログラムサービスコード (010 特定健診 …)")
    program_name: str = pa.Field(nullable=True)
    institution_number: str = pa.Field(nullable=True, description="the examining institution (健診機関)")
    document_id: str = pa.Field(nullable=True, description="CDA id / Composition.identifier")
    item_code: str = pa.Field(str_matches=r"^[0-9A-Z]{17}$", description="特定健診項目コード (1.2.392.200119.6.1005)")
    item_name: str = pa.Field(nullable=True)
    value_type: str = pa.Field(nullable=True, isin=["PQ", "CD", "CO", "ST"])
    value_number: float = pa.Field(nullable=True)
    value_unit: str = pa.Field(nullable=True, description="UCUM")
    value_code: str = pa.Field(nullable=True)
    value_code_system: str = pa.Field(nullable=True)
    value_text: str = pa.Field(nullable=True)
    interpretation: str = pa.Field(nullable=True, description="H / L / N / LX (入力下限以下) / HX (入力上限以上)")
    source_form: str = pa.Field(isin=["fhir", "xml"])

    class Config:
        strict = False


class StagedConsent(_Provenance):
    """staging.consent — one row per Consent × kind × grantee."""

    consent_id: str = pa.Field(description="Consent.id")
    patient_key: str = pa.Field(str_matches=PATIENT_KEY_RE)
    event_time: str = _datetime("Consent.dateTime", nullable=False)
    status: str = pa.Field(isin=["active", "inactive"], description="active = grant/change; inactive = withdrawal")
    provision_type: str = pa.Field(nullable=True, isin=["permit", "deny"])
    kind: str = pa.Field(nullable=True, isin=list(INFORMATION_KINDS), description="null = every kind")
    grantee: str = pa.Field(nullable=True, str_matches=INSTITUTION_NUMBER_RE, description="null = every facility")
    period_start: str = _datetime("provision.period.start")
    period_end: str = _datetime("provision.period.end")


class StagedAccessEvent(_Provenance):
    """staging.access_event — one row per AuditEvent (PatientRead)."""

    access_id: str = pa.Field(description="AuditEvent.id")
    patient_key: str = pa.Field(str_matches=PATIENT_KEY_RE)
    viewer: str = pa.Field(str_matches=INSTITUTION_NUMBER_RE, description="viewing facility")
    recorded: str = _datetime("AuditEvent.recorded", nullable=False)
    purpose: str = pa.Field(nullable=True, isin=["TREAT", "ETREAT"])
    action: str = pa.Field(nullable=True, isin=["C", "R", "U", "D", "E"])
    outcome: str = pa.Field(nullable=True)
    kinds_text: str = pa.Field(nullable=True, description="kinds viewed, comma-separated")
    # No format checks on who viewed: an access must never drop out of the audit trail over a secondary field;
    # a missing or unknown role is kept and flagged by the audit (A-ROLE).
    staff_id: str = pa.Field(nullable=True, description="staff member who viewed: facility-local practitioner id "
                                                        "(kept: not a patient identifier)")
    staff_role: str = pa.Field(nullable=True, description="urn:karte:staff-role code (data/reference/staff_roles.csv)")
    resource_refs_json: str = pa.Field(nullable=True, description='resources viewed, JSON array of '
                                       '"<医療機関番号>|<resourceInstance identifier>" ("|id" when the institution is '
                                       'not given); null when the log names none')


class StagedFacility(_Provenance):
    """staging.facility — one row per registry CSV row, its headers mapped and values normalised
    (pipelines/ingest/facility_registry.py: bureau headers, full-width digits, 7-digit codes, 和暦 dates)."""

    institution_number: str = pa.Field(str_matches=INSTITUTION_NUMBER_RE,
                                       description="医療機関番号: 都道府県 2 + 点数表 1 + 医療機関コード 7 (検証番号 checked)")
    facility_name: str = pa.Field(nullable=True, description="医療機関名称")
    prefecture_code: str = pa.Field(str_matches=r"^(0[1-9]|[1-3][0-9]|4[0-7])$",
                                    description="JIS 都道府県コード (= the number's first two digits)")
    score_table: str = pa.Field(isin=["1", "3"], description="点数表: 1 医科, 3 歯科")
    facility_type: str = pa.Field(isin=["hospital", "clinic", "dental"],
                                  description="病院 / 一般診療所 / 歯科診療所")
    bed_count: int = pa.Field(nullable=True, ge=0, description="病床数 (all wards); required for hospitals (≥ 20)")
    applied_on: str = _datetime("申請日")
    connected_on: str = _datetime("接続日")
    first_submission_on: str = _datetime("初回送信日")
    first_view_on: str = _datetime("初回閲覧日")


def contract_columns(model: type[pa.DataFrameModel]) -> list[str]:
    return list(_schema(model).columns)


def select_columns(model: type[pa.DataFrameModel], frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(contract_columns(model))


def contract_failures(model: type[pa.DataFrameModel], frame: pl.DataFrame, key: str = "raw_id") -> pl.DataFrame:
    """Rows of `frame` that break `model`, as (key, rule_id K-CONTRACT, message, rule_order).

    A failure that is not about particular rows (a missing column, a wrong dtype) is a bug in Karte,
    not bad input, and is raised.

    pandera is the judge, but it pays ~40 ms a call whatever the rows (one plan and collect per check, and
    its first call imports hypothesis), so its checks are first screened in one polars expression
    (`failing_rows`) and pandera sees only the rows that fail one — none, usually; its failure cases over
    those rows are the ones it would find over the whole frame.
    """
    empty = pl.DataFrame(schema={key: pl.Int64, "rule_id": pl.String, "message": pl.String, "rule_order": pl.Int32})
    if frame.is_empty():
        return empty
    subset = frame.select(contract_columns(model)).with_row_index("_row")
    failing = failing_rows(model, subset)
    if failing is not None:
        if not failing.any():
            return empty
        subset = subset.filter(failing).drop("_row").with_row_index("_row")
    try:
        model.validate(subset, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        schema_level = cases.filter(pl.col("index").is_null())
        if schema_level.height:
            problems = "; ".join(f"{r['column']}: {r['check']} got {r['failure_case']}"
                                 for r in schema_level.head(5).iter_rows(named=True))
            raise TypeError(f"{model.__name__}: frame does not match the contract ({problems})") from exc
        return (
            cases.with_columns(pl.col("index").cast(pl.UInt32))
            .join(subset.select("_row", key), left_on="index", right_on="_row")
            .select(
                pl.col(key),
                pl.lit("K-CONTRACT").alias("rule_id"),
                pl.format("column {} fails {}: {}", pl.col("column"), pl.col("check"),
                          pl.col("failure_case").cast(pl.String).fill_null("(missing)")).alias("message"),
                pl.lit(100, dtype=pl.Int32).alias("rule_order"),
            )
        )
    return empty


# --- the screen: pandera's checks as one polars expression -------------------------------------------------

def _str_length(column: pl.Expr, min_value: int | None = None, max_value: int | None = None,
                exact_value: int | None = None) -> pl.Expr | None:
    chars = column.str.len_chars()
    if exact_value is not None:
        return chars.eq(exact_value)
    if min_value is None and max_value is None:
        return None  # pandera raises: let it
    if min_value is None:
        return chars.le(max_value)
    if max_value is None:
        return chars.ge(min_value)
    return chars.is_between(min_value, max_value)


def _str_matches(column: pl.Expr, pattern) -> pl.Expr:
    pattern = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
    return column.str.contains(pattern if pattern.startswith("^") else f"^{pattern}")


#: pandera's built-in polars checks (pandera/backends/polars/builtin_checks.py), as expressions: true where a
#: value passes. A check not listed here keeps its model out of the screen (pandera then validates every row).
#: tests/validation/test_contract_screen.py holds them to pandera's own verdicts.
_BUILTIN_CHECKS = {
    "str_matches": _str_matches,
    "str_length": _str_length,
    "isin": lambda column, allowed_values: column.is_in(list(allowed_values)),
    "notin": lambda column, forbidden_values: column.is_in(list(forbidden_values)).not_(),
    "greater_than_or_equal_to": lambda column, min_value: column.ge(min_value),
    "greater_than": lambda column, min_value: column.gt(min_value),
    "less_than_or_equal_to": lambda column, max_value: column.le(max_value),
    "less_than": lambda column, max_value: column.lt(max_value),
    "equal_to": lambda column, value: column.eq(value),
    "not_equal_to": lambda column, value: column.ne(value),
}


@functools.cache
def _schema(model: type[pa.DataFrameModel]) -> pa.DataFrameSchema:
    return model.to_schema()


@functools.cache
def _screen(model: type[pa.DataFrameModel]) -> tuple[tuple[str, bool, tuple[pl.Expr, ...]], ...] | None:
    """Per column of `model`: (name, nullable, the expressions its checks pass on, nulls passing as pandera
    lets them) — or None when some check is not a built-in per-row check of one column the screen knows
    (uniqueness, frame-level checks, coercion, defaults, parsers, capped failure cases, custom checks)."""
    schema = _schema(model)
    if schema.checks or schema.unique or schema.coerce or schema.strict or schema.add_missing_columns \
            or getattr(schema, "parsers", None) or getattr(schema, "drop_invalid_rows", False):
        return None
    columns = []
    for name, column in schema.columns.items():
        if column.unique or column.coerce or column.regex or column.default is not None \
                or getattr(column, "parsers", None) or column.drop_invalid_rows:
            return None
        passes = []
        for check in column.checks:
            build = _BUILTIN_CHECKS.get(check.name)
            if build is None or check.element_wise or check.groupby is not None or check.n_failure_cases is not None \
                    or getattr(check._check_fn, "__name__", None) != check.name:
                return None
            verdict = build(pl.col(name), **check._check_kwargs)
            if verdict is None:
                return None
            passes.append(verdict.fill_null(True) if check.ignore_na else verdict.fill_null(False))
        columns.append((name, column.nullable, tuple(passes)))
    return tuple(columns)


@functools.cache
def _dtypes_match(model: type[pa.DataFrameModel], schema: tuple[tuple[str, pl.DataType], ...]) -> bool:
    """pandera's dtype check of every column, for frames of this polars schema (it depends on nothing else)."""
    frame = pl.LazyFrame(schema=dict(schema))
    for name, column in _schema(model).columns.items():
        if column.dtype is None:
            continue
        verdict = column.dtype.check(dict(schema)[name], PolarsData(frame.select(name), name))
        if not (verdict if isinstance(verdict, bool) else all(verdict)):
            return False
    return True


def failing_rows(model: type[pa.DataFrameModel], frame: pl.DataFrame) -> pl.Series | None:
    """A boolean per row of `frame`: true where the row breaks a null or value check of `model` — pandera's
    built-in checks and null rules as one polars expression, evaluated once. None when the screen cannot stand
    in for pandera (a check it does not know, a dtype pandera would reject): then pandera validates all rows."""
    columns = _screen(model)
    if columns is None or not _dtypes_match(model, tuple(frame.select(contract_columns(model)).schema.items())):
        return None
    fails = []
    for name, nullable, passes in columns:
        if not nullable:  # as pandera: NaN counts as missing in a float column
            present = pl.col(name).is_not_null()
            if frame.schema[name] in (pl.Float32, pl.Float64):
                present = present & pl.col(name).is_not_nan()
            fails.append(present.not_())
        fails += [verdict.not_() for verdict in passes]
    if not fails:
        return pl.Series("failing", [False] * frame.height)
    try:
        return frame.select(pl.any_horizontal(fails).alias("failing"))["failing"]
    except pl.exceptions.PolarsError:  # a check that cannot run on these values: pandera reports it (CHECK_ERROR)
        return None
