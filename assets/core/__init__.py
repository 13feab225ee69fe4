"""core: deduplicated, pseudonymous tables keyed by identity; newest version wins, entered-in-error is a
tombstone; every clinical row carries patient_key, institution_number, category and provenance."""

import dagster as dg

from assets.metadata import declared_schema, step_upstream_keys, table_metadata
from pipelines.consent import intervals
from pipelines.ingest.upsert import CORE_TABLES, CoreTable, duplicate_identities, upsert
from pipelines.resources import KarteWarehouse
from pipelines.warehouse import get_watermark

GROUP = "core"
CLINICAL = {"condition", "allergy", "lab_result", "medication_request", "document", "checkup_result"}


def every_row_has_patient(con, table: str) -> dg.AssetCheckResult:
    """Referential integrity: every clinical row's patient_key exists in core.patient."""
    orphans = con.execute(
        f"SELECT count(*) FROM core.{table} t ANTI JOIN core.patient p USING (patient_key)").fetchone()[0]
    return dg.AssetCheckResult(asset_key=["core", table], check_name="every_row_has_patient",
                               passed=orphans == 0, metadata={"orphan_rows": orphans})


def identity_is_unique(con, spec: CoreTable, since: int) -> dg.AssetCheckResult:
    """The table's grain: one row per identity (kept by the upsert; the table has no key to enforce it), over the
    identities written since watermark `since`."""
    duplicated = duplicate_identities(con, spec, since)
    return dg.AssetCheckResult(asset_key=["core", spec.table], check_name="identity_is_unique",
                               passed=duplicated == 0, metadata={"duplicated_identities": duplicated})


def _core_asset(spec: CoreTable) -> dg.AssetsDefinition:
    key = ["core", spec.table]
    staging_key = ["staging", spec.staging or spec.table]
    checks = [dg.AssetCheckSpec("every_row_has_patient", asset=key)] if spec.table in CLINICAL else []
    if spec.one_row_per_identity:
        checks.append(dg.AssetCheckSpec("identity_is_unique", asset=key, blocking=True))
    extra_specs = []
    if spec.table == "document":
        extra_specs = [["core", "document_section"], ["core", "document_resource"]]

    @dg.multi_asset(
        specs=[dg.AssetSpec(key, group_name=GROUP, kinds={"duckdb"}, metadata=declared_schema(f"core.{spec.table}"),
                            # clinical tables after core.patient, so the integrity check sees their patients
                            deps=[list(k) for k in dict.fromkeys(map(tuple, [
                                staging_key, *step_upstream_keys(spec.consumer),
                                *([["core", "patient"]] if spec.table in CLINICAL else [])]))],
                            description=f"core.{spec.table}: one row per {' × '.join(spec.identity)}.")]
        + [dg.AssetSpec(k, group_name=GROUP, kinds={"duckdb"}, deps=[["staging", k[1]]],
                        metadata=declared_schema(f"core.{k[1]}"),
                        description=f"core.{k[1]} (written with core.document)") for k in extra_specs],
        check_specs=checks,
        name=f"core_{spec.table}",
    )
    def _asset(karte: KarteWarehouse):
        with karte.ingest_connection() as con:
            since = get_watermark(con, spec.consumer)
            counts = upsert(con, spec)
            yield dg.MaterializeResult(asset_key=key, metadata=table_metadata(con, f"core.{spec.table}", **counts))
            for extra in extra_specs:
                yield dg.MaterializeResult(asset_key=extra, metadata=table_metadata(con, f"core.{extra[1]}"))
            if spec.table in CLINICAL:
                yield every_row_has_patient(con, spec.table)
            if spec.one_row_per_identity:
                yield identity_is_unique(con, spec, since)

    return _asset


core_assets = [_core_asset(spec) for spec in CORE_TABLES]


@dg.asset(key=["core", "consent_interval"], group_name=GROUP, kinds={"duckdb"}, deps=[["core", "consent_event"]],
          metadata=declared_schema("core.consent_interval"),
          check_specs=[dg.AssetCheckSpec("intervals_are_well_formed", asset=["core", "consent_interval"],
                                         blocking=True)])
def consent_interval(karte: KarteWarehouse):
    """core.consent_interval: one row per permitting Consent × kind × grantee while it is in force."""
    with karte.ingest_connection() as con:
        written = intervals.derive_consent_intervals(con)
        yield dg.MaterializeResult(metadata=table_metadata(con, "core.consent_interval", rows_written=written))
        bad = con.execute("SELECT count(*) FROM core.consent_interval WHERE valid_to <= valid_from").fetchone()[0]
        yield dg.AssetCheckResult(passed=bad == 0, metadata={"empty_or_inverted_intervals": bad})


core_assets.append(consent_interval)
