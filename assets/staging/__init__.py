"""staging: typed flat tables per kind of information, built from the ViewDefinitions, after the IG rules
and the data contracts; every failure is an ops.quarantine row."""

import dagster as dg

from assets.grain import grain_check, grain_check_spec
from assets.metadata import contract_schema, step_upstream_keys, table_exists, table_metadata
from pipelines.ingest import checkups, structure
from pipelines.ingest.bundles import stage_bundles
from pipelines.ingest.documents import stage_documents
from pipelines.ingest.lines import LINE_STAGES, LineStage, stage_lines
from pipelines.ingest.resources import ResourceStage, clinical_stages, stage_resources
from pipelines.resources import KarteWarehouse
from pipelines.validation import contracts
from pipelines.warehouse import get_watermark
from pipelines.warehouse.grain import FAST_STRUCTURE_VERDICT, STRUCTURE_FAILURE

GROUP = "staging"
STRUCTURE = ["staging", "fhir_structure"]
BUNDLE = ["staging", "bundle"]


@dg.asset(key=STRUCTURE, group_name=GROUP, kinds={"duckdb"}, deps=[["raw", "resource"]],
          check_specs=[grain_check_spec(g, STRUCTURE) for g in (STRUCTURE_FAILURE, FAST_STRUCTURE_VERDICT)])
def fhir_structure(karte: KarteWarehouse):
    """staging.structure_failure: one row per raw record that fhir.resources (R4B) rejects."""
    with karte.ingest_connection() as con:
        checked_before = get_watermark(con, structure.CONSUMER)  # both tables' rows past it are this step's
        outcome = structure.stage_structure(con, karte.settings().structure_validation)
        # missed > 0: the fast check passed what fhir.resources rejects (docs/structure.md)
        yield dg.MaterializeResult(metadata=table_metadata(con, "staging.structure_failure", **vars(outcome)))
        for grain in (STRUCTURE_FAILURE, FAST_STRUCTURE_VERDICT):
            yield grain_check(con, grain, checked_before, STRUCTURE)


@dg.multi_asset(specs=[
    dg.AssetSpec(BUNDLE, group_name=GROUP, kinds={"duckdb"}, deps=[STRUCTURE],
                 description="staging.bundle: one row per bundle with its envelope verdict (accepted or not).",
                 metadata={"dagster/column_schema": contract_schema(contracts.StagedBundle)}),
    dg.AssetSpec(["staging", "patient"], group_name=GROUP, kinds={"duckdb"}, deps=[STRUCTURE],
                 description="staging.patient: one row per accepted bundle's Patient (pseudonymised demographics).",
                 metadata={"dagster/column_schema": contract_schema(contracts.StagedPatient)}),
], check_specs=[dg.AssetCheckSpec("meets_contract", asset=BUNDLE, blocking=True),
                dg.AssetCheckSpec("meets_contract", asset=["staging", "patient"], blocking=True)])
def bundle(karte: KarteWarehouse):
    """Bundle-level IG rules; a rejected bundle is quarantined whole."""
    with karte.ingest_connection() as con:
        result = stage_bundles(con, karte.settings().pseudonym_key)
        yield dg.MaterializeResult(asset_key=BUNDLE, metadata=table_metadata(
            con, "staging.bundle", bundles=result.rows_in, accepted=result.accepted, rejected=result.rejected))
        yield dg.MaterializeResult(asset_key=["staging", "patient"],
                                   metadata=table_metadata(con, "staging.patient", contracts.StagedPatient))
        yield contract_check(con, "staging.bundle", contracts.StagedBundle, BUNDLE, key="bundle_key")
        yield contract_check(con, "staging.patient", contracts.StagedPatient, ["staging", "patient"])


@dg.multi_asset(specs=[
    dg.AssetSpec(["staging", "document"], group_name=GROUP, kinds={"duckdb"}, deps=[BUNDLE],
                 metadata={"dagster/column_schema": contract_schema(contracts.StagedDocument)},
                 description="staging.document: one row per accepted document's Composition."),
    dg.AssetSpec(["staging", "document_section"], group_name=GROUP, kinds={"duckdb"}, deps=[BUNDLE],
                 description="staging.document_section: one row per section × entry reference."),
    dg.AssetSpec(["staging", "document_resource"], group_name=GROUP, kinds={"duckdb"}, deps=[BUNDLE],
                 description="staging.document_resource: one row per supporting (non-clinical) document entry."),
], check_specs=[dg.AssetCheckSpec("meets_contract", asset=["staging", "document"], blocking=True)])
def document(karte: KarteWarehouse):
    with karte.ingest_connection() as con:
        staged, quarantined = stage_documents(con)
        yield dg.MaterializeResult(asset_key=["staging", "document"], metadata=table_metadata(
            con, "staging.document", contracts.StagedDocument, staged=staged, quarantined=quarantined))
        yield dg.MaterializeResult(asset_key=["staging", "document_section"],
                                   metadata=table_metadata(con, "staging.document_section"))
        yield dg.MaterializeResult(asset_key=["staging", "document_resource"],
                                   metadata=table_metadata(con, "staging.document_resource"))
        yield contract_check(con, "staging.document", contracts.StagedDocument, ["staging", "document"])


def contract_check(con, table: str, model, asset_key, key: str = "raw_id") -> dg.AssetCheckResult:
    """The whole staging table still meets its contract (the stage enforced it row by row)."""
    if not table_exists(con, table):
        return dg.AssetCheckResult(asset_key=asset_key, check_name="meets_contract", passed=True,
                                   metadata={"rows": 0})
    frame = con.sql(f"SELECT * FROM {table}").pl()
    failing = contracts.contract_failures(model, frame, key=key)
    return dg.AssetCheckResult(asset_key=asset_key, check_name="meets_contract", passed=failing.is_empty(),
                               metadata={"rows": frame.height, "failing_rows": failing[key].n_unique(),
                                         "example": failing["message"].head(3).to_list()})


def _stage_asset(table: str, contract, stage_fn) -> dg.AssetsDefinition:
    """A staging table asset: run its stage, report the table, re-check its contract (blocking). It depends on
    what the step depends on in `karte ingest` (step_dependencies: upstream and shared tables alike)."""
    key = ["staging", table]

    @dg.asset(key=key, group_name=GROUP, kinds={"duckdb"}, deps=step_upstream_keys(f"staging.{table}"),
              description=contract.__doc__,
              metadata={"dagster/column_schema": contract_schema(contract)},
              check_specs=[dg.AssetCheckSpec("meets_contract", asset=key, blocking=True)])
    def _asset(karte: KarteWarehouse):
        with karte.ingest_connection() as con:
            staged, quarantined = stage_fn(con, karte.settings().pseudonym_key)
            yield dg.MaterializeResult(metadata=table_metadata(
                con, f"staging.{table}", contract, staged=staged, quarantined=quarantined))
            yield contract_check(con, f"staging.{table}", contract, key)

    _asset.__name__ = f"staging_{table}"
    return _asset


def _clinical_asset(stage: ResourceStage) -> dg.AssetsDefinition:
    return _stage_asset(stage.table, stage.contract, lambda con, key: stage_resources(con, stage, key))


def _line_asset(stage: LineStage) -> dg.AssetsDefinition:
    return _stage_asset(stage.table, stage.contract, lambda con, key: stage_lines(con, stage, key))


clinical_assets = [_clinical_asset(s) for s in clinical_stages()]
checkup_asset = _stage_asset("checkup_result", contracts.StagedCheckupResult,
                             lambda con, key: checkups.stage_checkups(con, key))
line_assets = [_line_asset(s) for s in LINE_STAGES]
staging_assets = [fhir_structure, bundle, document, *clinical_assets, checkup_asset, *line_assets]
