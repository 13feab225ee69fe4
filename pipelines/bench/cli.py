"""`karte bench`: time the compiled staging view against hand-written SQL; print a table, write bench.json."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipelines.bench import DEFAULT_RESOURCES, NATIONAL_ACCESS_EVENTS, NATIONAL_FACILITIES
from pipelines.config import load_settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _views(args, progress) -> dict:
    from pipelines.bench.views import run_views_bench

    return run_views_bench(args.resources, repeat=args.repeat, progress=progress).as_dict()


def _ingest(args, progress) -> dict:
    from pipelines.bench.ingest import run_ingest_bench

    return run_ingest_bench(args.patients, progress=progress, repeat=args.repeat).as_dict()


def _incremental(args, progress) -> dict:
    from pipelines.bench.incremental import run_incremental_bench

    return run_incremental_bench(args.patients, repeat=args.repeat, progress=progress,
                                 deployment_scale=args.deployment_scale).as_dict()


def _parallel(args, progress) -> dict:
    from pipelines.bench.parallel import run_parallel_bench

    return run_parallel_bench(args.patients, progress=progress).as_dict()


def _reports(args, progress) -> dict:
    from pipelines.bench.scale import run_scale_bench

    return run_scale_bench(args.facilities, args.access_events, repeat=args.repeat, warehouse=args.scale_warehouse,
                           progress=progress).as_dict()


def _at_least(minimum: int):
    """argparse type: an integer of at least `minimum` (anything else is a usage error, exit 2)."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:,}, got {value:,}")
        return value
    parse.__name__ = "integer"
    return parse


def _printer(module: str, function: str):
    """`pipelines.bench.<module>.<function>(section)`, the module imported only when it is called: a section's
    module imports what its benchmark needs (fhir.resources, the generator), which printing another does not."""
    def printer(section: dict) -> str:
        from importlib import import_module

        return getattr(import_module(f"pipelines.bench.{module}"), function)(section)
    return printer


def _views_headline(v: dict) -> str:
    return (f"compiled / hand-written {v['ratio_compiled_to_hand_written']:.2f} "
            f"({v['resources']:,} Observations, best {v['compiled_seconds']:.2f} s)")


#: section name → (runner(args, progress) → JSON-able dict, printer(section) → text, headline(section) → one
#: line for the history); run in this order
SECTIONS = {
    "views": (_views, lambda section: _views_table(section), _views_headline),
    "ingest": (_ingest, _printer("ingest", "table"), _printer("ingest", "headline")),
    "incremental": (_incremental, _printer("incremental", "table"), _printer("incremental", "headline")),
    "parallel": (_parallel, _printer("parallel", "table"), _printer("parallel", "headline")),
    "reports": (_reports, _printer("scale", "table"), _printer("scale", "headline")),
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench", help="benchmark the view compiler against hand-written DuckDB SQL",
        description="Generate a default sample, replicate its Observations to --resources rows inside DuckDB, "
                    "then time the compiled staging observation view and a hand-written explicit-schema "
                    "flatten of the same columns (best of --repeat, alternating). Writes the 'views' and "
                    "'machine' sections of the report, keeping any other section.")
    p.add_argument("--resources", type=int, default=DEFAULT_RESOURCES,
                   help=f"Observation resources to flatten (default {DEFAULT_RESOURCES:,})")
    p.add_argument("--repeat", type=int, default=3,
                   help="timed runs: of each flatten (the best counts), of the ingest section's parse limit and "
                        "default-mode ingest (the median counts), of the incremental section's scenarios "
                        "(medians) and of the reports (median) (default 3)")
    p.add_argument("--only", choices=list(SECTIONS), help="run one section (default: all)")
    p.add_argument("--patients", type=int, default=1500,
                   help="ingest section: patients in the generated sample (default 1,500 ≈ 46k records)")
    p.add_argument("--deployment-scale", type=_at_least(2), default=0, metavar="N",
                   help="incremental section: also time 1 %% new data at N × the sample as a deployment runs it "
                        "(an archive, an inbox of new files only), against that input's full load; N = 16 adds "
                        "≈ 4 minutes a round (default: not run)")
    p.add_argument("--facilities", type=_at_least(100), default=NATIONAL_FACILITIES,
                   help=f"reports section: registered facilities (default {NATIONAL_FACILITIES:,}, national)")
    p.add_argument("--access-events", type=_at_least(1000), default=NATIONAL_ACCESS_EVENTS,
                   help=f"reports section: access events (default {NATIONAL_ACCESS_EVENTS:,})")
    p.add_argument("--scale-warehouse", metavar="PATH",
                   help="reports section: build the synthetic warehouse here and keep it, or reuse it if it has "
                        "the same sizes (default: a temporary one)")
    p.add_argument("--out", help="report file (default $KARTE_REPORTS/bench.json, i.e. data/reports/bench.json)")
    p.add_argument("--json", action="store_true", help="print the report sections as one JSON object")
    p.add_argument("--history", type=int, nargs="?", const=10, metavar="N",
                   help="measure nothing: print the headline figures of the last N runs (default 10) from the "
                        "history beside the report (bench_history.jsonl; --only: one section)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from pipelines.bench.report import append_history, machine_info, write_sections

    if args.resources < 1 or args.repeat < 1 or args.patients < 10 or (args.history is not None and args.history < 1):
        print("karte bench: error: --resources, --repeat and --history must be at least 1, --patients at least 10",
              file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out) if args.out else load_settings().reports / "bench.json"
    if args.history is not None:
        return _print_history(out, args.history, args.only, args.json)
    progress = None
    if not args.json and sys.stderr.isatty():
        def progress(step: str) -> None:
            print(f"bench: {step}…", file=sys.stderr, flush=True)
    try:
        sections = {name: runner(args, progress) for name, (runner, _, _) in SECTIONS.items()
                    if args.only in (None, name)}
        sections["machine"] = machine_info()
        path = write_sections(out, sections)
        append_history(out, sections)
    except (OSError, RuntimeError) as exc:
        print(f"karte bench: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(sections, ensure_ascii=False))
    else:
        print(_table(sections))
        print(f"report: {path}")
    return EXIT_OK


def _print_history(report: Path, last: int, only: str | None, as_json: bool) -> int:
    """The headline figures of the last `last` runs (of section `only`), oldest first."""
    from pipelines.bench.report import history_path, read_history

    runs, unreadable = read_history(report)
    if only:
        runs = [run for run in runs if only in run["sections"]]
    runs = runs[-last:]
    if as_json:
        print(json.dumps({"runs": runs, "unreadable_lines": unreadable}, ensure_ascii=False))
        return EXIT_OK
    if not runs:
        print(f"no benchmark runs recorded in {history_path(report)}" + (f" for section {only}" if only else ""))
        return EXIT_OK
    plural = "s" if len(runs) != 1 else ""
    lines = [f"benchmark history: {history_path(report)} (last {len(runs)} run{plural}, oldest first)"]
    for run in runs:
        machine = run["sections"].get("machine", {})
        where = f"{machine.get('cpu_count', '?')} cores, DuckDB {machine.get('duckdb', '?')}"
        lines.append(f"{run.get('measured_at') or '?'}  {run.get('revision') or 'no revision'}  ({where})")
        for name, (_, _, headline) in SECTIONS.items():
            if name in run["sections"] and only in (None, name):
                try:
                    text = headline(run["sections"][name])
                except (KeyError, TypeError, ValueError):
                    text = "(written by a release that recorded other figures)"
                lines.append(f"  {name:<12} {text}")
    if unreadable:
        lines.append(f"({unreadable} unreadable line(s) skipped)")
    print("\n".join(lines))
    return EXIT_OK


def _table(sections: dict) -> str:
    m = sections["machine"]
    machine = f"machine: {m['cpu_count']} cores, {m['memory_gib']} GiB, Python {m['python']}, DuckDB {m['duckdb']}"
    return "\n".join([machine] + [printer(sections[name]) for name, (_, printer, _) in SECTIONS.items()
                                   if name in sections])


def _views_table(v: dict) -> str:
    verdict = "within" if v["within_target"] else "NOT within"
    header = (f"views benchmark: {v['resources']:,} Observation resources (cycling through the "
              f"{v['distinct_resources']:,} of a generated sample, new ids), best of {v['repeat']}, "
              f"{v['threads']} DuckDB threads")
    rows = [("compiled staging observation view", "compiled"), ("hand-written explicit-schema SQL", "hand_written")]
    lines = [header, f"  {'':<34}{'seconds':>9}{'median':>9}{'rows/s':>12}{'cpu s':>8}"]
    for label, key in rows:
        lines.append(f"  {label:<34}{v[key + '_seconds']:>9.2f}{v[key + '_median_seconds']:>9.2f}"
                     f"{v[key + '_rows_per_second']:>12,}{v[key + '_cpu_seconds']:>8.1f}")
    lines.append(f"  ratio compiled / hand-written: {v['ratio_compiled_to_hand_written']:.2f} ({verdict} the "
                 f"{v['target_ratio']}x target); by CPU time {v['cpu_ratio_compiled_to_hand_written']:.2f}")
    lines.append(f"  outputs identical: {v['outputs_identical']} ({v['rows_out']:,} rows); "
                 f"setup {v['setup_seconds']:.0f}s")
    return "\n".join(lines)
