"""`karte view run` (one ViewDefinition, ad hoc) and `karte view list` (the analysts' view catalog).

Exit codes as everywhere in `karte`: 0 ok; 1 with a one-line message for a missing or unusable file, an
invalid view (the message names the file and the failing place in the view), a bad input line or an
unusable warehouse; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("view", help="run a ViewDefinition ad hoc, or list the analysts' views",
                              description="SQL on FHIR v2 ViewDefinitions, compiled to DuckDB SQL.")
    sub = p.add_subparsers(dest="view_command", required=True)

    run = sub.add_parser(
        "run", help="run one ViewDefinition over NDJSON resources or the warehouse and print its rows",
        description="Run VIEW.json over --input (NDJSON, one FHIR resource per line; Bundles are expanded to "
                    "their entries; '-' reads stdin) or over the warehouse's raw records that reached core "
                    "(read-only; the default when --input is not given).")
    run.add_argument("view", help="ViewDefinition JSON file")
    source = run.add_mutually_exclusive_group()
    source.add_argument("--input", help="NDJSON file of FHIR resources (.gz ok), or one JSON resource/Bundle")
    source.add_argument("--warehouse", help="DuckDB warehouse file (default $KARTE_WAREHOUSE or data/warehouse.duckdb)")
    run.add_argument("--format", choices=["csv", "json", "parquet"], default="json",
                     help="json: one array of row objects (default); csv: with a header; parquet: needs --out")
    run.add_argument("--out", help="write to this file instead of stdout")
    run.set_defaults(func=cmd_run)

    listing = sub.add_parser("list", help="check every view file of the catalog folder and list its table",
                             description="Validate every *.json in the views folder (default $KARTE_VIEWS or "
                                         "data/views) as Dagster would; exit 1 when any file is unusable.")
    listing.add_argument("--dir", help="views folder (default $KARTE_VIEWS or data/views)")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(func=cmd_list)
    return p


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"karte view: error: {message}", file=sys.stderr)
    return code


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.config import load_settings
    from pipelines.views import ViewError
    from pipelines.views.adhoc import InputError, input_connection, read_resources, view_query, write_rows
    from pipelines.views.catalog import load_entry
    from pipelines.warehouse import WarehouseError, connect

    if args.format == "parquet" and not args.out:
        return _fail("--format parquet writes a binary file: give --out FILE", EXIT_USAGE)
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        return _fail(f"--out {out}: folder {out.parent} does not exist")
    try:
        view = load_entry(Path(args.view)).view
        if args.input:
            texts = read_resources(args.input)
            with input_connection(texts) as con:
                write_rows(con, view, view_query(view, warehouse=False), args.format, out)
        else:
            settings = load_settings(warehouse=args.warehouse)
            con = connect(settings.warehouse, read_only=True)
            try:
                write_rows(con, view, view_query(view, warehouse=True), args.format, out)
            finally:
                con.close()
    except (ViewError, InputError, WarehouseError) as exc:
        return _fail(str(exc))
    except duckdb.Error as exc:  # a query-time failure, e.g. a column path that returned several values
        return _fail(f"{args.view}: the view failed while running: {_first_line(exc)}")
    except OSError as exc:
        return _fail(f"cannot write {out}: {exc.strerror}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from pipelines.views.catalog import load_catalog, views_dir

    folder = Path(args.dir) if args.dir else views_dir()
    catalog = load_catalog(folder)
    if args.json:
        print(json.dumps({
            "folder": str(folder),
            "views": [{"table": f"views.{v.name}", "file": str(v.path), "resource": v.resource_type,
                       "columns": [c.name for c in v.columns]} for v in catalog.views],
            "problems": [{"file": str(p.path), "message": p.message} for p in catalog.problems],
        }, ensure_ascii=False))
    else:
        for v in catalog.views:
            print(f"ok       views.{v.name:<32} {v.resource_type:<20} {len(v.columns):>3} columns  {v.path.name}")
        for p in catalog.problems:
            print(f"skipped  {p.message}")
        if not catalog.views and not catalog.problems:
            print(f"no view files in {folder}")
    return EXIT_FAILED if catalog.problems else EXIT_OK


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
