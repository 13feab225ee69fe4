"""ops: the run's receipt — counts in = loaded + quarantined + duplicate + tombstoned — and warehouse-wide
invariants (nothing lost, no raw identifier anywhere: raw and quarantine hold them sealed)."""

import json
from contextlib import closing

import dagster as dg

from assets.core import core_assets
from pipelines.ingest import checks
from pipelines.ingest.run import archive_into_summary
from pipelines.ingest.run import run_summary as summarise_run
from pipelines.resources import KarteWarehouse
from pipelines.warehouse.grain import RECORD_OUTCOME

KEY = ["ops", "run_summary"]


@dg.asset(
    key=KEY, group_name="ops", kinds={"duckdb"},
    deps=[key for a in core_assets for key in a.keys],
    check_specs=[dg.AssetCheckSpec("every_record_accounted", asset=KEY, blocking=True),
                 dg.AssetCheckSpec(RECORD_OUTCOME.name, asset=KEY, blocking=True,
                                   description="ops.record_outcome: one row per raw record (no key enforces it)"),
                 dg.AssetCheckSpec("no_raw_identifiers", asset=KEY, blocking=True)],
)
def run_summary(karte: KarteWarehouse):
    """ops.batch: one row per run; this asset reports the latest run's counts (files and records), and with an
    archive (KARTE_ARCHIVE) moves the files the run finished out of the inbox."""
    settings = karte.settings()
    with closing(karte.connect()) as con:
        batch_id = con.execute("SELECT max(batch_id) FROM ops.batch").fetchone()[0]
        summary = summarise_run(con, batch_id, settings)
        if settings.archive is not None:
            archive_into_summary(con, settings, summary)
        missing = checks.records_without_outcome(con)
        repeated = checks.records_with_several_outcomes(con, batch_id)
        hits = checks.raw_identifier_hits(con, pseudonym_key=settings.pseudonym_key)  # every schema
        yield dg.MaterializeResult(metadata={"summary": dg.MetadataValue.json(summary.as_dict()),
                                             "records_in": summary.records_in,
                                             "records_loaded": summary.records_loaded,
                                             "records_quarantined": summary.records_quarantined})
        balanced = summary.records_in == (summary.records_loaded + summary.records_quarantined
                                          + summary.records_duplicate + summary.records_tombstoned)
        yield dg.AssetCheckResult(check_name="every_record_accounted", passed=missing == 0 and balanced,
                                  metadata={"records_without_outcome": missing, "balanced": balanced,
                                            "outcomes": json.dumps(checks.outcome_counts(con))})
        yield dg.AssetCheckResult(check_name=RECORD_OUTCOME.name, passed=repeated == 0,
                                  metadata={"records_with_several_outcomes": repeated})
        yield dg.AssetCheckResult(check_name="no_raw_identifiers", passed=not hits,
                                  metadata={"hits": json.dumps(hits, ensure_ascii=False)})
