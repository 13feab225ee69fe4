"""The `karte` command line: generate, ingest, run, refresh, query, report.

Exit 0 when the run completed (quarantined records included); 2 for bad arguments; 1 with a one-line
message for operational failures (unreadable inbox, locked or foreign warehouse). Never a traceback
for those: `--debug` shows one.
"""

import argparse
import contextlib
import csv
import json
import os
import sys
from pathlib import Path

from pipelines.config import load_settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(RuntimeError):
    """An operational failure with a one-line message for the user."""


def _warehouse_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--warehouse", help="DuckDB warehouse file (default $KARTE_WAREHOUSE or data/warehouse.duckdb)")


def _print_summary(summary: dict, reports: list[Path] | None = None) -> None:
    s = summary
    print(f"files: {s['files_seen']} seen, {s['files_ingested']} new, "
          f"{s['files_skipped_duplicate']} already seen (skipped; {s.get('files_unchanged', 0)} of them unchanged "
          f"since an earlier run)")
    if s["files_ingested"] == 0 and s["records_in"] == 0:
        print("nothing new to ingest: every file in the inbox was seen before")
    print(f"records: {s['records_in']} in = {s['records_loaded']} loaded + {s['records_quarantined']} quarantined"
          f" + {s['records_duplicate']} duplicate + {s['records_tombstoned']} tombstoned")
    for table, n in s["loaded_by_table"].items():
        print(f"  loaded {n:>8}  {table}")
    for rule, n in s["quarantined_by_rule"].items():
        print(f"  quarantined {n:>4}  {rule}")
    print(f"warehouse: {s['warehouse']}")
    if s.get("files_archived") or s.get("files_removed_as_copies") or s.get("files_kept_in_inbox"):
        print(f"archive: {s['files_archived']} files moved, {s['files_removed_as_copies']} copies of archived files "
              f"removed, {len(s['files_kept_in_inbox'])} kept in the inbox")
        for path, why in s["files_kept_in_inbox"][:10]:
            print(f"  kept {path}: {why}")
    for path in reports or []:
        print(f"report: {path}")
    if s.get("uses_development_key"):
        print("note: patient keys use the public DEVELOPMENT pseudonym key (set KARTE_PSEUDONYM_KEY in production)")


class _StepBar:
    """A progress bar over ingest steps on stderr (used only when stderr is a terminal)."""

    def __init__(self):
        from tqdm import tqdm

        self._bar = tqdm(unit="step", file=sys.stderr, leave=False)

    def __call__(self, step: str, done: int, total: int) -> None:
        self._bar.total = total
        self._bar.n = done
        self._bar.set_description(step)

    def close(self) -> None:
        self._bar.close()


def cmd_ingest(args: argparse.Namespace) -> int:
    from pipelines.ingest.landing import InboxError
    from pipelines.ingest.raw import RawWriteError
    from pipelines.ingest.run import ingest
    from pipelines.ingest.vault import VaultError
    from pipelines.warehouse import WarehouseError, connect

    settings = load_settings(warehouse=args.warehouse, inbox=args.inbox, archive=args.archive)
    bar = _StepBar() if sys.stderr.isatty() and not args.json else None
    try:
        con = connect(settings.warehouse)
        try:
            summary = ingest(con, settings, progress=bar).as_dict()
        finally:
            con.close()
            if bar:
                bar.close()
    except (InboxError, WarehouseError, RawWriteError, VaultError) as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        _print_summary(summary)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Materialise every asset through Dagster (the same job the schedule runs), then summarise."""
    from pipelines.jobs import run_all_assets

    settings = load_settings(warehouse=args.warehouse, inbox=args.inbox, archive=args.archive)
    result = run_all_assets(settings)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        _print_summary(result["ingest"], [Path(p) for p in result["reports"]])
        print(f"asset checks: {result['checks_passed']} passed, {result['checks_failed']} failed")
    return EXIT_OK if result["success"] else EXIT_FAILED


def cmd_query(args: argparse.Namespace) -> int:
    from pipelines.warehouse import WarehouseError
    from pipelines.warehouse.query import run_read_only

    settings = load_settings(warehouse=args.warehouse)
    try:
        columns, rows = run_read_only(settings.warehouse, args.sql)
    except WarehouseError as exc:
        raise CliError(str(exc)) from exc
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return EXIT_OK


def cmd_refresh(args: argparse.Namespace) -> int:
    """`karte refresh`: the reports' stored aggregates brought up to date — the audit's per-day counts and consent
    coverage, the adoption report's per-institution facts. Reports are right without it; it keeps them fast."""
    from pipelines.audit.aggregates import refresh_aggregates
    from pipelines.reports.adoption.stored import refresh_facts
    from pipelines.warehouse import WarehouseError, connect

    settings = load_settings(warehouse=args.warehouse)
    if not settings.warehouse.exists():
        raise CliError(f"warehouse {settings.warehouse} does not exist; run `karte ingest` first")
    try:
        con = connect(settings.warehouse)
    except WarehouseError as exc:
        raise CliError(str(exc)) from exc
    try:
        done = {"audit": refresh_aggregates(con), "adoption": refresh_facts(con)}
    finally:
        con.close()
    if args.json:
        print(json.dumps(done))
    else:
        audit, adoption = done["audit"], done["adoption"]
        print(f"audit aggregates: {audit['days_recounted']} days recounted, coverage of "
              f"{audit['coverage_recomputed']} accesses recomputed (through access raw_id {audit['access_raw_id']})")
        print(f"adoption facts: {adoption['files_added']} files added (through file_id {adoption['file_id']})")
    return EXIT_OK


@contextlib.contextmanager
def _read_only_warehouse(path):
    """The warehouse opened read-only for a report; an unusable one is a one-line CliError."""
    from pipelines.warehouse import WarehouseError, connect

    try:
        con = connect(path, read_only=True)
    except WarehouseError as exc:
        raise CliError(str(exc)) from exc
    try:
        yield con
    finally:
        con.close()


def _print_reports(paths, as_json: bool, **extra) -> int:
    if as_json:
        print(json.dumps({"reports": [str(p) for p in paths], **extra}, ensure_ascii=False))
    else:
        for path in paths:
            print(f"report: {path}")
    return EXIT_OK


def cmd_access_history(args: argparse.Namespace) -> int:
    """What マイナポータル shows one patient; the identifier is hashed here and never stored."""
    from pipelines.reports.access_history import PatientIdentifierError, access_history, render

    if not args.patient:
        raise CliError("access-history needs --patient '保険者番号:記号:番号:枝番'")
    if args.format not in (None, "text", "csv", "json"):  # --format is shared with `report adoption`
        print(f"karte report: error: access-history --format is text, csv or json, got {args.format!r}",
              file=sys.stderr)
        return EXIT_USAGE
    settings = load_settings(warehouse=args.warehouse)
    with _read_only_warehouse(settings.warehouse) as con:
        try:
            frame = access_history(con, args.patient, settings.pseudonym_key)
        except PatientIdentifierError as exc:
            raise CliError(str(exc)) from exc
    sys.stdout.write(render(frame, "json" if args.json else args.format or "text"))
    return EXIT_OK


def cmd_report_audit(args: argparse.Namespace) -> int:
    """`karte report audit`: findings over the access log (read-only), analysts' and security officer's files."""
    from pipelines.audit.window import AuditWindowError
    from pipelines.reports.audit import write_audit_report

    settings = load_settings(warehouse=args.warehouse, reports=args.out)
    with _read_only_warehouse(settings.warehouse) as con:
        try:
            paths = write_audit_report(con, settings.reports, args.as_of, args.date_from, args.date_to)
        except AuditWindowError as exc:
            print(f"karte report: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    return _print_reports(paths, args.json)


def _iso_day(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def cmd_report_checkups(args: argparse.Namespace) -> int:
    """`karte report checkups`: 特定健診 participation and results by prefecture, sex and age band."""
    from pipelines.reports.checkups import CheckupReportError, build_checkup_report, write_checkup_report

    settings = load_settings(warehouse=args.warehouse, reports=args.out)
    with _read_only_warehouse(settings.warehouse) as con:
        try:
            report = build_checkup_report(con, args.as_of, getattr(args, "fiscal_year", None))
        except CheckupReportError as exc:
            raise CliError(str(exc)) from exc
    paths = write_checkup_report(report, settings.reports)
    return _print_reports(paths, args.json, fiscal_year=report.fiscal_year)


def cmd_report(args: argparse.Namespace) -> int:
    if args.name == "checkups":
        return cmd_report_checkups(args)
    if args.name == "adoption":
        from pipelines.reports.adoption.cli import run as run_adoption_report

        return run_adoption_report(args)
    if args.name == "audit":
        return cmd_report_audit(args)
    if args.name == "access-history":
        return cmd_access_history(args)
    from pipelines.reports.quality import write_quality_report

    settings = load_settings(warehouse=args.warehouse, reports=args.out)
    with _read_only_warehouse(settings.warehouse) as con:
        paths = write_quality_report(con, settings.reports)
    return _print_reports(paths, args.json)


def build_parser() -> argparse.ArgumentParser:
    from pipelines.audit import cli as audit_cli
    from pipelines.bench import cli as bench_cli
    from pipelines.generate import cli as generate_cli
    from pipelines.views import cli as views_cli

    parser = argparse.ArgumentParser(prog="karte", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    generate_cli.add_parser(sub)
    views_cli.add_parser(sub)
    bench_cli.add_parser(sub)
    audit_cli.add_parser(sub)

    p = sub.add_parser("ingest", help="load new inbox files into the warehouse (no Dagster needed)")
    p.add_argument("--inbox", help="inbox folder (default $KARTE_INBOX or data/inbox)")
    p.add_argument("--archive", help="move the inbox files a run finishes into this folder, so later runs scan only "
                                     "what is new (default $KARTE_ARCHIVE; unset: files stay in the inbox)")
    _warehouse_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON summary object")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("run", help="materialise every Dagster asset (ingest, checks, reports) in-process")
    p.add_argument("--inbox", help="inbox folder (default $KARTE_INBOX or data/inbox)")
    p.add_argument("--archive", help="move the inbox files the run finishes into this folder (default $KARTE_ARCHIVE)")
    _warehouse_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON summary object")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("refresh", help="bring the reports' stored aggregates up to date (audit counts and coverage, "
                                       "adoption facts): the upkeep after an ingest that keeps reports fast")
    _warehouse_arg(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=cmd_refresh)

    p = sub.add_parser("query", help="run read-only SQL against the warehouse and print CSV")
    p.add_argument("sql")
    _warehouse_arg(p)
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("report", help="write a report (HTML + CSV) under data/reports/")
    p.add_argument("name", choices=["quality", "access-history", "audit", "adoption", "checkups"],
                   help="adoption: how far the rollout is from the 2030 target, per prefecture and facility type "
                        "(--as-of, --format, --target-level, --target-date); "
                        "quality: what each facility sent that was rejected, and why; "
                        "access-history: every access to one patient's record (--patient); "
                        "audit: who saw what and was it allowed (--as-of, --from, --to); "
                        "checkups: 特定健診 participation and results by prefecture, sex and age band "
                        "(--as-of, --fiscal-year)")
    p.add_argument("--as-of", type=_iso_day, dest="as_of",
                   help="audit: what the warehouse may know, up to the end of this JST day (default: latest access); "
                        "adoption: the day the report is read on (default: the latest data day)")
    p.add_argument("--from", type=_iso_day, dest="date_from", help="audit: first JST day of accesses audited")
    p.add_argument("--to", type=_iso_day, dest="date_to", help="audit: last JST day of accesses audited (≤ --as-of)")
    p.add_argument("--fiscal-year", type=int, dest="fiscal_year",
                   help="checkups: the fiscal year (April–March) reported (default: the one holding --as-of, "
                        "or today in Japan)")
    p.add_argument("--patient", help="access-history: the patient's 被保険者個人識別子 (hashed, never stored)")
    p.add_argument("--format", help="access-history: text | csv | json (default text); "
                                    "adoption: comma-separated html,csv,xlsx,parquet (default all four)")
    p.add_argument("--target-level", type=float, dest="target_level",
                   help="adoption: share of registered facilities connected that counts as the target (default 0.95)")
    p.add_argument("--target-date", type=_iso_day, dest="target_date",
                   help="adoption: the day the target level is due (default 2030-12-31)")
    _warehouse_arg(p)
    p.add_argument("--out", help="report folder (default $KARTE_REPORTS or data/reports)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pipelines.config import ConfigError

    parser = build_parser()
    args = parser.parse_args(argv)
    # Warehouses and reports hold health data: everything Karte creates is owner-only (0600 / 0700).
    os.umask(0o077)
    try:
        return args.func(args)
    except (CliError, ConfigError) as exc:
        if args.debug:
            raise
        print(f"karte {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
