"""The tamper-evidence check of the access log: core.access_event's hash chain (pipelines/audit/chain.py).

Every run checks incrementally (the rows after the newest checkpoint re-hashed, every row checked for deletion,
copies and insertion) and records a new checkpoint when intact; the weekly job `access_chain_full_verification`
re-hashes everything from the genesis, which also finds a row edited before the checkpoint.
"""

from contextlib import closing

import dagster as dg

from pipelines.audit.chain import ChainVerdict, verify_and_checkpoint
from pipelines.resources import KarteWarehouse


def _metadata(verdict: ChainVerdict) -> dict:
    # The head is published here too: the run log keeps it outside the warehouse (an external anchor).
    return {"rows": verdict.rows, "rows_hashed": verdict.rows_hashed, "full": verdict.full,
            "head_chain_seq": verdict.head_seq, "head_row_hash": verdict.head_hash,
            "first_bad_chain_seq": verdict.first_bad_seq if verdict.first_bad_seq is not None else -1,
            "first_bad_access_id": verdict.first_bad_access_id or "", "problem": verdict.problem or "",
            "verification": verdict.scope()}


@dg.asset_check(asset=dg.AssetKey(["core", "access_event"]), name="hash_chain_intact",
                description="The access rows since the last verified checkpoint still hash to their chain links and "
                            "no row was deleted, copied or inserted; names the first row that does not follow.")
def access_event_hash_chain(karte: KarteWarehouse) -> dg.AssetCheckResult:
    # Not blocking: a broken chain must not stop the audit report, which shows the verdict on its first page.
    with closing(karte.connect()) as con:  # writes the checkpoint when intact
        verdict = verify_and_checkpoint(con)
    return dg.AssetCheckResult(passed=verdict.intact, severity=dg.AssetCheckSeverity.ERROR,
                               description=verdict.message(), metadata=_metadata(verdict))


@dg.op(description="Re-hash the whole access log from the genesis; fails naming the first bad row.")
def verify_access_chain_in_full(context: dg.OpExecutionContext, karte: KarteWarehouse) -> None:
    with closing(karte.connect()) as con:
        verdict = verify_and_checkpoint(con, full=True)
    context.log.info(verdict.message())
    context.log_event(dg.AssetObservation(asset_key=dg.AssetKey(["core", "access_event"]),
                                          metadata=_metadata(verdict)))
    if not verdict.intact:
        raise dg.Failure(description=verdict.message(), metadata=_metadata(verdict))


@dg.job(description="The access log's hash chain verified in full (also catches an edit before the checkpoint).")
def access_chain_full_verification():
    verify_access_chain_in_full()


weekly_full_chain_verification = dg.ScheduleDefinition(
    job=access_chain_full_verification, cron_schedule="0 3 * * 0", execution_timezone="Asia/Tokyo",
    name="weekly_full_chain_verification", default_status=dg.DefaultScheduleStatus.STOPPED)
