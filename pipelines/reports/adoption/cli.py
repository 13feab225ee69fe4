"""`karte report adoption [--as-of DATE] [--format html,csv,xlsx,parquet] [--target-level 0.95]
[--target-date 2030-12-31] [--warehouse PATH] [--out DIR] [--json]` — read-only on the warehouse."""

import argparse
import json
import sys
from dataclasses import replace


def run(args: argparse.Namespace) -> int:
    from pipelines.cli import EXIT_OK, EXIT_USAGE, CliError
    from pipelines.config import load_settings
    from pipelines.reports.adoption import build_adoption_report, default_target, write_adoption_report
    from pipelines.reports.adoption.export import FORMATS, parse_formats
    from pipelines.warehouse import WarehouseError, connect

    try:
        formats = parse_formats(args.format) if args.format else FORMATS
        target = default_target()
        if getattr(args, "target_level", None) is not None:
            target = replace(target, level=args.target_level)
        if getattr(args, "target_date", None) is not None:
            target = replace(target, by=args.target_date)
    except ValueError as exc:
        print(f"karte report: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    settings = load_settings(warehouse=args.warehouse, reports=args.out)
    try:
        con = connect(settings.warehouse, read_only=True)
    except WarehouseError as exc:
        raise CliError(str(exc)) from exc
    if args.json or not sys.stdout.isatty():  # DuckDB draws its own progress bar on stdout for long queries
        con.execute("SET enable_progress_bar = false")
    try:
        report = build_adoption_report(con, as_of=args.as_of, target=target, warehouse=str(settings.warehouse))
    finally:
        con.close()
    paths = write_adoption_report(report, settings.reports, formats)
    if args.json:
        national = report.tables["adoption_trajectory"].filter(segment="all").row(0, named=True)
        print(json.dumps({"reports": [str(p) for p in paths], "as_of": report.as_of.isoformat(),
                          "registered": national["registered"], "connected": national["connected"],
                          "status": national["status"]}, ensure_ascii=False))
    else:
        for path in paths:
            print(f"report: {path}")
    return EXIT_OK
