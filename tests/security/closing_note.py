"""Figures for issue 8's closing note, every one from a run made by this command (from the repository root):

    .venv/bin/python -m tests.security.closing_note [--seconds 30] [--json]

1. atheris: each target fuzzed for --seconds in its own process — inputs executed and seconds, as libFuzzer
   counts them; a crash, a broken invariant, a hang or a leaked file descriptor would fail the target;
2. hypothesis: the fuzz tests of test_fuzz.py as CI runs them — test cases per test and seconds;
3. one real `karte ingest` (the CLI, in a child process) over an inbox of every hostile input at full size —
   a 1 GiB line, a 10^6-entry bundle, gzip and zip bombs, NUL / BOM / CRLF / Shift_JIS / invalid UTF-8 /
   nesting, an oversized CSV field, unsafe archives — next to valid files: records in, loaded, quarantined,
   lost, quarantine rows by rule, wall time and the child's peak RSS; then the ingest again (nothing new);
4. the limits, each with its threshold and the rule it yields.

Needs the official examples in ../shared (the hostile inbox is built around them).
"""

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from pipelines.checkups.archive import ArchiveLimits
from pipelines.config import PROJECT_ROOT
from pipelines.ingest import reader
from tests.conftest import EXAMPLES
from tests.security import hostile_inputs as H

TARGETS = ["json", "csv", "cda", "archive"]


def atheris_runs(seconds: int, work: Path) -> list[dict]:
    rows = []
    for target in TARGETS:
        done = subprocess.run(
            [sys.executable, "-m", "tests.security.atheris_harness", target, str(work / f"corpus-{target}"),
             f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1",
             f"-artifact_prefix={work}/"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
        out = done.stdout + done.stderr
        runs = re.search(r"stat::number_of_executed_units: (\d+)", out)
        took = re.search(r"Done \d+ runs in (\d+) second", out)
        rows.append({"target": target, "inputs": int(runs.group(1)) if runs else None,
                     "seconds": int(took.group(1)) if took else None, "exit": done.returncode,
                     "crashes": len(list(work.glob("crash-*"))) + len(list(work.glob("timeout-*")))
                     + len(list(work.glob("oom-*")))})
    return rows


def hypothesis_runs() -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/security/test_fuzz.py",
                           "--hypothesis-show-statistics"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          check=False)
    rows = []
    pattern = re.compile(r"::(\w+):\s+- during generate phase \(([\d.]+) seconds\):.*?- (\d+) passing, (\d+) failing",
                         re.DOTALL)
    for name, seconds, passing, failing in pattern.findall(done.stdout):
        rows.append({"test": name, "cases": int(passing) + int(failing), "failing": int(failing),
                     "seconds": float(seconds)})
    return rows + [{"test": "(pytest exit code)", "cases": None, "failing": done.returncode, "seconds": None}]


def build_hostile_inbox(inbox: Path) -> None:
    fhir, facilities, checkups = (inbox / d for d in ("fhir", "facilities", "checkups"))
    for folder in (fhir, facilities, checkups):
        folder.mkdir(parents=True)
    for name, (content, _, _) in H.shape_files().items():
        (fhir / name).write_bytes(content)
    H.write_big_line(fhir / "1318814790_one-gib-line.ndjson", H.compact(H.REFERRAL))
    (fhir / "million-entries.json").write_bytes(H.million_entry_bundle())
    (fhir / "gzip-bomb.ndjson.gz").write_bytes(H.gzip_bomb(40))
    (fhir / "valid-observations.json").write_bytes(H.compact(H.OBSERVATIONS))
    (facilities / "registry.csv").write_text(H.registry_with_huge_field(), encoding="utf-8")
    for name, content in H.hostile_archives().items():
        (checkups / name).write_bytes(content)


def karte_ingest(inbox: Path, warehouse: Path) -> tuple[dict, float, float]:
    """(the --json summary, seconds, peak RSS MiB of the child) of one real `karte ingest`."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "ingest", "--inbox", str(inbox), "--warehouse",
                           str(warehouse), "--json"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"karte ingest failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return json.loads(done.stdout), seconds, peak


def hostile_ingest(work: Path) -> dict:
    inbox, warehouse = work / "inbox", work / "warehouse.duckdb"
    build_hostile_inbox(inbox)
    input_bytes = sum(p.stat().st_size for p in inbox.rglob("*") if p.is_file())
    summary, seconds, peak = karte_ingest(inbox, warehouse)
    again, _, _ = karte_ingest(inbox, warehouse)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        unaccounted = con.execute("SELECT count(*) FROM raw.resource ANTI JOIN ops.record_outcome USING (raw_id)"
                                  ).fetchone()[0]
        files_without_outcome = con.execute(
            """SELECT count(*) FROM ops.file_manifest m
               WHERE NOT EXISTS (SELECT 1 FROM raw.resource r WHERE r.file_id = m.file_id)
                 AND NOT EXISTS (SELECT 1 FROM ops.quarantine q WHERE q.file_id = m.file_id)""").fetchone()[0]
    accounted = (summary["records_loaded"] + summary["records_quarantined"] + summary["records_duplicate"]
                 + summary["records_tombstoned"])
    return {"files": summary["files_seen"], "input_bytes": input_bytes, "seconds": round(seconds, 1),
            "peak_rss_mib": round(peak), "records_in": summary["records_in"],
            "records_loaded": summary["records_loaded"], "records_quarantined": summary["records_quarantined"],
            "records_duplicate": summary["records_duplicate"], "records_tombstoned": summary["records_tombstoned"],
            "records_lost": summary["records_in"] - accounted, "raw_rows_without_outcome": unaccounted,
            "files_without_outcome": files_without_outcome, "quarantined_by_rule": summary["quarantined_by_rule"],
            "second_run_files_ingested": again["files_ingested"], "second_run_records_in": again["records_in"]}


def limits() -> list[dict]:
    archive = ArchiveLimits()
    mib = 1024**2
    return [
        {"limit": "NDJSON line", "threshold": f"{reader.MAX_LINE_BYTES // mib} MiB", "rule": "K-LINE-SIZE"},
        {"limit": ".json document", "threshold": f"{reader.MAX_DOCUMENT_BYTES // mib} MiB", "rule": "K-FILE-SIZE"},
        {"limit": "entries per Bundle", "threshold": f"{reader.MAX_BUNDLE_ENTRIES:,}", "rule": "K-BUNDLE-ENTRIES"},
        {"limit": "JSON nesting", "threshold": f"{reader.MAX_JSON_DEPTH} levels (orjson reads 1024)",
         "rule": "K-JSON"},
        {"limit": "gzip decompressed size", "threshold": f"{reader.MAX_DECOMPRESSED_BYTES // mib} MiB",
         "rule": "K-GZIP"},
        {"limit": "gzip ratio", "threshold": f"{reader.MAX_GZIP_RATIO}:1 past {reader.RATIO_FLOOR_BYTES // mib} MiB",
         "rule": "K-GZIP"},
        {"limit": "registry CSV", "threshold": f"{reader.MAX_CSV_BYTES // mib} MiB", "rule": "K-FILE-SIZE"},
        {"limit": "registry CSV field", "threshold": "131,072 characters (csv module)", "rule": "K-LINE-SIZE"},
        {"limit": "archive members", "threshold": f"{archive.max_members:,} (central directory ≤ 2× before listing)",
         "rule": "K-ZIP"},
        {"limit": "archive member size", "threshold": f"{archive.max_member_bytes // mib} MiB", "rule": "K-ZIP"},
        {"limit": "archive total size", "threshold": f"{archive.max_total_bytes // mib} MiB", "rule": "K-ZIP"},
        {"limit": "archive member ratio", "threshold": f"{archive.max_ratio:.0f}:1 past 1 MiB", "rule": "K-ZIP"},
        {"limit": "CDA document", "threshold": "10,000,000 characters", "rule": "K-XML"},
    ]


def _table(rows: list[dict]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join("" if r[k] is None else str(r[k]) for k in head) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=30, help="atheris time per target (default 30)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if not EXAMPLES.is_dir():
        raise SystemExit(f"official JP-CLINS examples not found at {EXAMPLES} (set KARTE_SHARED)")
    with tempfile.TemporaryDirectory(prefix="karte-closing-") as tmp:
        work = Path(tmp)
        # the ingest first: its peak RSS is read from RUSAGE_CHILDREN, a maximum over every child so far
        hostile = hostile_ingest(work)
        figures = {"command": " ".join([".venv/bin/python -m tests.security.closing_note", *sys.argv[1:]]),
                   "atheris": atheris_runs(args.seconds, work), "hypothesis": hypothesis_runs(),
                   "hostile_ingest": hostile, "limits": limits()}
    if args.json:
        print(json.dumps(figures, ensure_ascii=False, indent=1))
        return
    ingest = dict(figures["hostile_ingest"])
    by_rule = ingest.pop("quarantined_by_rule")
    print(f"$ {figures['command']}\n\n## atheris\n{_table(figures['atheris'])}\n\n## hypothesis\n"
          f"{_table(figures['hypothesis'])}\n\n## one karte ingest over every hostile input\n"
          f"{_table([{'figure': k, 'value': v} for k, v in ingest.items()])}\n\nquarantined by rule: "
          f"{json.dumps(by_rule, ensure_ascii=False)}\n\n## limits\n{_table(figures['limits'])}")


if __name__ == "__main__":
    main()
