"""`karte audit verify [--full]` and `karte audit refresh`: the audit's upkeep between reports.

verify   checks core.access_event's hash chain — incrementally (the rows after the newest checkpoint re-hashed, the
         rest checked for structure) or with --full from the genesis — and, when intact, records the new checkpoint
         (ops.access_chain_checkpoint). Exit 0 intact, 1 broken (or the warehouse unusable), with the verdict.
refresh  brings the audit's stored aggregates up to date (pipelines/audit/aggregates.py).
Both write to the warehouse; `karte report audit` only reads it.
"""

import argparse
import json
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("audit", help="the audit's upkeep: verify the access log's hash chain, refresh "
                                            "the audit aggregates")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--warehouse", help="DuckDB warehouse file (default $KARTE_WAREHOUSE or data/warehouse.duckdb)")
    common.add_argument("--json", action="store_true", help="print the result as one JSON object")
    actions = p.add_subparsers(dest="action", required=True)
    verify = actions.add_parser("verify", parents=[common], help="verify the hash chain since the last checkpoint "
                                                                 "(or --full) and record a checkpoint when intact")
    verify.add_argument("--full", action="store_true", help="re-hash every row from the genesis (the periodic job)")
    verify.set_defaults(func=run_verify)
    refresh = actions.add_parser("refresh", parents=[common], help="bring the audit's stored per-day counts and "
                                                                   "consent coverage up to date")
    refresh.set_defaults(func=run_refresh)
    return p


def _open(args: argparse.Namespace):
    from pipelines.cli import CliError
    from pipelines.config import load_settings
    from pipelines.warehouse import WarehouseError, connect

    settings = load_settings(warehouse=args.warehouse)
    if not settings.warehouse.exists():
        raise CliError(f"warehouse {settings.warehouse} does not exist; run `karte ingest` first")
    try:
        return connect(settings.warehouse)
    except WarehouseError as exc:
        raise CliError(str(exc)) from exc


def run_verify(args: argparse.Namespace) -> int:
    from pipelines.audit.chain import verify_and_checkpoint

    con = _open(args)
    try:
        verdict = verify_and_checkpoint(con, full=args.full)
    finally:
        con.close()
    if args.json:
        print(json.dumps({"intact": verdict.intact, "full": verdict.full, "rows": verdict.rows,
                          "rows_hashed": verdict.rows_hashed, "head_chain_seq": verdict.head_seq,
                          "head_row_hash": verdict.head_hash, "first_bad_chain_seq": verdict.first_bad_seq,
                          "first_bad_access_id": verdict.first_bad_access_id, "problem": verdict.problem,
                          "message": verdict.message()}, ensure_ascii=False))
    else:
        print(verdict.message(), file=sys.stdout if verdict.intact else sys.stderr)
    return 0 if verdict.intact else 1


def run_refresh(args: argparse.Namespace) -> int:
    from pipelines.audit.aggregates import refresh_aggregates

    con = _open(args)
    try:
        done = refresh_aggregates(con)
    finally:
        con.close()
    if args.json:
        print(json.dumps(done))
    else:
        print(f"audit aggregates refreshed: {done['days_recounted']} days recounted, coverage of "
              f"{done['coverage_recomputed']} accesses recomputed (through access raw_id {done['access_raw_id']}, "
              f"consent raw_id {done['consent_raw_id']})")
    return 0
