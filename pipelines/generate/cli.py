"""`karte generate`: write a deterministic JP-CLINS sample (optionally with injected faults)."""

import argparse
import json
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "generate", help="write a deterministic JP-CLINS sample data set",
        description="Write FHIR bundles, consent and access logs and a facility registry (the ingest inbox layout) "
                    "to --out. The same arguments always give byte-identical files.")
    p.add_argument("--out", required=True, help="output directory (created; a previous sample there is replaced)")
    p.add_argument("--facilities", type=int, default=60, help="number of medical institutions (default 60)")
    p.add_argument("--patients", type=int, default=1500, help="number of patients (default 1500)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--fault-rate", type=float, default=0.0, dest="fault_rate",
                   help="probability in [0, 1] that a file or bundle gets one injected fault (default 0)")
    p.add_argument("--start", default="2025-01-01", help="first day of the sample (default 2025-01-01)")
    p.add_argument("--end", default="2026-10-31", help="last day of the sample (default 2026-10-31)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from pipelines.generate.generator import check_arguments, generate
    from pipelines.generate.validate import SelfCheckError

    try:
        check_arguments(args.facilities, args.patients, args.fault_rate, args.start, args.end)
    except ValueError as exc:
        print(f"karte generate: error: {exc}", file=sys.stderr)
        return 2
    bar = None
    if not args.json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=args.facilities, unit="facility", desc="generate", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(done - bar.n)

    try:
        summary = generate(args.out, facilities=args.facilities, patients=args.patients, seed=args.seed,
                           fault_rate=args.fault_rate, start=args.start, end=args.end, progress=progress)
    except (ValueError, FileExistsError) as exc:
        print(f"karte generate: error: {exc}", file=sys.stderr)
        return 2
    except SelfCheckError as exc:
        print(f"karte generate: self-check failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False, sort_keys=True))
    else:
        print(summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="karte")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)
