"""The tamper-evidence check of the access log: core.access_event's hash chain (pipelines/audit/chain.py)."""

from contextlib import closing

import dagster as dg

from pipelines.audit.chain import verify_chain
from pipelines.resources import KarteWarehouse


@dg.asset_check(asset=dg.AssetKey(["core", "access_event"]), name="hash_chain_intact",
                description="Every access row still hashes to its chain link; names the first row that does not.")
def access_event_hash_chain(karte: KarteWarehouse) -> dg.AssetCheckResult:
    # Not blocking: a broken chain must not stop the audit report, which shows the verdict on its first page.
    with closing(karte.connect(read_only=True)) as con:
        verdict = verify_chain(con)
    # The head is published here too: the run log keeps it outside the warehouse (an external anchor).
    return dg.AssetCheckResult(
        passed=verdict.intact, severity=dg.AssetCheckSeverity.ERROR, description=verdict.message(),
        metadata={"rows": verdict.rows, "head_chain_seq": verdict.head_seq, "head_row_hash": verdict.head_hash,
                  "first_bad_chain_seq": verdict.first_bad_seq if verdict.first_bad_seq is not None else -1,
                  "first_bad_access_id": verdict.first_bad_access_id or "", "problem": verdict.problem or ""})
