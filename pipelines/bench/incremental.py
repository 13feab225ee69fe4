"""Incremental and scaling benchmark (issue 7), each figure from a fresh child process on generated data, in
rounds (`repeat`) of the six steps below; a figure is the median of the rounds', a ratio the median of each
round's own ratio:

1. a full load of the default sample — seconds and peak RSS;
2. a re-run with nothing new — seconds spent in `ingest()` and closing the warehouse (what a scheduled run
   costs beyond its process start) and the whole `karte ingest` command's wall time;
3. 1 % new data (a disjoint sample of 1/100 the patients, added to the inbox) — seconds, as a share of the
   full load;
4. 4 × the input — peak RSS against the full load's (memory must follow the batch size, not the input);
5. steps 1–3 again with an archive (KARTE_ARCHIVE, pipelines/ingest/archive.py): each run moves the files it
   finished out of the inbox, so the re-run and the increment scan only what is new — the configuration a
   deployment whose inbox keeps receiving runs in;
6. the full sample and the 4 × input through the partitioned ingest (pipelines/partitioned: map processes,
   one merging process), with shards of the same size at both scales — peak RSS of the merging process and of
   the largest map process, against the full sample's;
7. 1 % new data for the 4 × input's warehouse (a disjoint sample of 1/100 its patients, added to a copy of the
   4 × inbox as in step 3) — seconds, as a share of the 4 × input's full load. An increment's run has a cost
   that does not grow with the data (starting its steps, importing fhir.resources models for new senders,
   closing the warehouse: ≈ 0.6 s here), which a 1 × full load of ≈ 4 s cannot absorb; this figure shows
   whether the share falls as the data grows, i.e. whether an increment costs what it adds.
8. only when asked (`deployment_scale`, `karte bench --deployment-scale N`: minutes more): 1 % new data at N × the
   sample as a deployment runs it — the N × input's full load timed without an archive (what the share is of), a
   re-run with an archive that moves every file it finished (not timed), then the increment, with the archive, into
   an inbox holding only new files. At 16 × this is where a run's fixed cost stops mattering.

Targets (issue 7): re-run < 2 s; 1 % new data < 3 % of the full load; 4 × input < 1.2 × peak RSS.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipelines.bench import child_figures
from pipelines.generate import generate
from pipelines.ingest.landing import INBOX_FOLDERS

RERUN_TARGET_SECONDS = 2.0
INCREMENT_TARGET_SHARE = 0.03
RSS_TARGET_RATIO = 1.2

#: ingest() in this process; prints the seconds of ingest() and the close after it (the close checkpoints what the
#: run wrote: 0.1-0.2 s at 1 x, 1.1 s after a +1 % increment at 16 x — part of what a run costs), records in,
#: files archived, this process's peak RSS and the largest pool worker's (MiB)
_CHILD = """
import json, resource, sys, time
from pipelines.bench import own_peak_rss_kib
from pipelines.config import load_settings
from pipelines.ingest.run import ingest
from pipelines.warehouse import connect
settings = load_settings(warehouse=sys.argv[2], inbox=sys.argv[1])
con = connect(settings.warehouse)
started = time.perf_counter()
summary = ingest(con, settings)
con.close()
seconds = time.perf_counter() - started
print("KARTE-BENCH", json.dumps({"seconds": seconds, "records_in": summary.records_in,
                  "files_archived": summary.files_archived,
                  "peak_rss_mib": own_peak_rss_kib() // 1024,
                  "worker_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024}))
"""

#: the partitioned ingest of an inbox in this process (`shards` shards on 2 map processes); prints its seconds,
#: records in, the merging process's peak RSS and the largest map process's (MiB)
_PARTITIONED_CHILD = """
import json, sys, time
from pathlib import Path
from pipelines.bench import own_peak_rss_kib
from pipelines.config import load_settings
from pipelines.partitioned.run import run_partitioned
if __name__ == "__main__":
    settings = load_settings(warehouse=sys.argv[2], inbox=sys.argv[1])
    started = time.perf_counter()
    maps = []
    summary = run_partitioned(settings, lake=Path(sys.argv[2]).parent / "lake", shards=int(sys.argv[3]), workers=2,
                              map_results=maps)
    print("KARTE-BENCH", json.dumps({"seconds": time.perf_counter() - started, "records_in": summary.records_in,
                      "peak_rss_mib": own_peak_rss_kib() // 1024,
                      "worker_peak_rss_mib": max(m.peak_rss_kib for m in maps) // 1024}))
"""
#: shards per default-sized sample: the 4 × input gets 4 × as many, so a shard holds the same share of files
SHARDS_PER_SAMPLE = 4
#: the partitioned ingest's processes whose peaks are compared: the merging one and the largest map process
PARTITIONED_PROCESSES = ("peak_rss_mib", "worker_peak_rss_mib")


@dataclass
class IncrementalBench:
    patients: int
    full_records: int
    full_seconds: float
    full_peak_rss_mib: int
    full_worker_peak_rss_mib: int
    rerun_seconds: float
    rerun_command_seconds: float
    increment_records: int
    increment_seconds: float
    increment_share: float
    scaled_patients: int
    scaled_records: int
    scaled_seconds: float
    scaled_peak_rss_mib: int
    scaled_worker_peak_rss_mib: int
    rss_ratio: float
    rerun_within_target: bool
    increment_within_target: bool
    rss_within_target: bool
    # with an archive (step 5); a report from before it lacks these
    archive_full_seconds: float
    archive_files_moved: int
    archive_rerun_seconds: float
    archive_increment_seconds: float
    archive_increment_share: float
    #: step 6, the partitioned ingest: {"full" | "scaled": {"shards", "seconds", "records", "peak_rss_mib",
    #: "worker_peak_rss_mib"}} and the ratios scaled / full of each process's peak (reports before it lack these)
    partitioned: dict = field(default_factory=dict)
    partitioned_rss_ratio: dict = field(default_factory=dict)
    #: each round's full-load seconds and own ratios, in the order they ran (reports before rounds lack these)
    rounds: list = field(default_factory=list)
    #: step 7, 1 % new data for the scaled warehouse (reports before it lack these)
    scaled_increment_records: int = 0
    scaled_increment_seconds: float = 0.0
    scaled_increment_share: float = 0.0
    #: step 8, only when asked: 1 % new data at `deployment_scale` × the sample, with an archive (0: not run)
    deployment_scale: int = 0
    deployment_records: int = 0
    deployment_seconds: float = 0.0
    deployment_increment_records: int = 0
    deployment_increment_seconds: float = 0.0
    deployment_increment_share: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _ingest(inbox: Path, warehouse: Path, archive: Path | None = None) -> dict:
    return child_figures(_CHILD, str(inbox), str(warehouse), what=f"ingest of {inbox}",
                         env={"KARTE_ARCHIVE": str(archive)} if archive else None)


def _partitioned(inbox: Path, workdir: Path, shards: int) -> dict:
    workdir.mkdir()
    run = child_figures(_PARTITIONED_CHILD, str(inbox), str(workdir / "w.duckdb"), str(shards),
                        what=f"partitioned ingest of {inbox}")
    return {"shards": shards, "seconds": round(run["seconds"], 2), "records": run["records_in"],
            "peak_rss_mib": run["peak_rss_mib"], "worker_peak_rss_mib": run["worker_peak_rss_mib"]}


def _command_seconds(inbox: Path, warehouse: Path) -> float:
    karte = Path(sys.executable).with_name("karte")
    started = time.perf_counter()
    subprocess.run([str(karte), "ingest", "--inbox", str(inbox), "--warehouse", str(warehouse), "--json"],
                   capture_output=True, check=True)
    return time.perf_counter() - started


def _add_increment(inbox: Path, increment: Path) -> None:
    """The increment's files join the inbox under <kind>/increment/ (landing reads sub-folders)."""
    for folder in INBOX_FOLDERS:
        if (increment / folder).is_dir():
            shutil.copytree(increment / folder, inbox / folder / "increment")


def _link_or_copy(source: str, destination: str) -> None:
    """A hard link (the 4 × inbox is ~400 MB; its files are only read), a copy where the file system has none."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _round(data: Path, work: Path, scale: int, say: Callable[[str], None], deployment_scale: int = 0) -> dict:
    """Steps 1–7 (and 8 when `deployment_scale`) once, into fresh warehouses under `work`, each process's
    figures. The inboxes a scenario adds the increment to (or archives from) are copies; the 4 × input is only
    read, in place."""
    for name in ("inbox", "archived_inbox", "partitioned_inbox"):
        shutil.copytree(data / "inbox", work / name)
    say("full load")
    full = _ingest(work / "inbox", work / "w.duckdb")
    say("re-run with nothing new")
    rerun = _ingest(work / "inbox", work / "w.duckdb")
    rerun_command = {"seconds": _command_seconds(work / "inbox", work / "w.duckdb")}
    say("1 % new data")
    _add_increment(work / "inbox", data / "increment")
    increment = _ingest(work / "inbox", work / "w.duckdb")
    say(f"{scale}× input")
    scaled = _ingest(data / "scaled", work / "scaled.duckdb")
    say(f"1 % new data for the {scale}× input")
    shutil.copytree(data / "scaled", work / "scaled_inbox", copy_function=_link_or_copy)
    _add_increment(work / "scaled_inbox", data / "scaled_increment")
    scaled_increment = _ingest(work / "scaled_inbox", work / "scaled.duckdb")
    say("with an archive: full load, re-run, 1 % new data")
    inbox, warehouse, archive = work / "archived_inbox", work / "archived.duckdb", work / "archive"
    archive_full = _ingest(inbox, warehouse, archive)
    archive_rerun = _ingest(inbox, warehouse, archive)
    _add_increment(inbox, data / "increment")
    archive_increment = _ingest(inbox, warehouse, archive)
    say(f"partitioned ingest: the sample, then the {scale}× input (shards of the same size)")
    partitioned = {"full": _partitioned(work / "partitioned_inbox", work / "partitioned_full", SHARDS_PER_SAMPLE),
                   "scaled": _partitioned(data / "scaled", work / "partitioned_scaled", SHARDS_PER_SAMPLE * scale)}
    figures = {"full": full, "rerun": rerun, "rerun_command": rerun_command, "increment": increment,
               "scaled": scaled, "scaled_increment": scaled_increment,
               "archive_full": archive_full, "archive_rerun": archive_rerun, "archive_increment": archive_increment,
               "partitioned": partitioned}
    if deployment_scale:
        say(f"{deployment_scale}× input as deployed: full load, every file archived, 1 % new data")
        figures.update(_deployment(data, work))
    return figures


def _deployment(data: Path, work: Path) -> dict:
    """Step 8: the large input's full load without an archive (the share's denominator: moving files is not
    loading them), a re-run that archives every file the load finished (untimed), then the increment into the
    emptied inbox, with the archive, as a deployment's next run sees it."""
    inbox, warehouse, archive = work / "deployment_inbox", work / "deployment.duckdb", work / "deployment_archive"
    shutil.copytree(data / "deployment", inbox, copy_function=_link_or_copy)
    full = _ingest(inbox, warehouse)
    _ingest(inbox, warehouse, archive)
    _add_increment(inbox, data / "deployment_increment")
    return {"deployment_full": full, "deployment_increment": _ingest(inbox, warehouse, archive)}


def _round_ratios(r: dict) -> dict:
    """One round's own ratios: both sides of each measured minutes apart, in the same state of the machine."""
    full, parts = r["full"], r["partitioned"]
    return {"increment_share": r["increment"]["seconds"] / full["seconds"],
            "scaled_increment_share": r["scaled_increment"]["seconds"] / r["scaled"]["seconds"],
            "rss_ratio": r["scaled"]["peak_rss_mib"] / full["peak_rss_mib"],
            "archive_increment_share": r["archive_increment"]["seconds"] / full["seconds"],
            **{f"partitioned_{process}": parts["scaled"][process] / parts["full"][process]
               for process in PARTITIONED_PROCESSES},
            **({"deployment_increment_share": r["deployment_increment"]["seconds"] / r["deployment_full"]["seconds"]}
               if "deployment_full" in r else {})}


def run_incremental_bench(patients: int = 1500, scale: int = 4, repeat: int = 1,
                          progress: Callable[[str], None] | None = None,
                          deployment_scale: int = 0) -> IncrementalBench:
    """Steps 1–7 (and 8 at `deployment_scale` × the sample, when given) `repeat` times on the same generated
    data, each round on fresh copies and warehouses. A figure is the median of the rounds', a ratio the median of
    the rounds' own ratios (`rounds` keeps them all): one round's memory ratio moves by ±0.1 from run to run on this
    machine, so a single round cannot tell whether a target is met."""
    say = progress or (lambda _: None)
    with tempfile.TemporaryDirectory(prefix="karte-bench-incr-") as tmp:
        tmp = Path(tmp)
        say(f"generating {patients:,} patients, 1 % increment and {scale}× sample with its 1 % increment")
        generate(tmp / "inbox", patients=patients, seed=7, fault_rate=0.02)
        generate(tmp / "increment", patients=max(1, patients // 100), seed=1007, fault_rate=0.02)
        generate(tmp / "scaled", patients=patients * scale, seed=7, fault_rate=0.02)
        generate(tmp / "scaled_increment", patients=max(1, patients * scale // 100), seed=1007, fault_rate=0.02)
        if deployment_scale:
            say(f"generating the {deployment_scale}× sample and its 1 % increment")
            generate(tmp / "deployment", patients=patients * deployment_scale, seed=7, fault_rate=0.02)
            generate(tmp / "deployment_increment", patients=max(1, patients * deployment_scale // 100), seed=1007,
                     fault_rate=0.02)
        rounds = []
        for number in range(1, repeat + 1):
            (work := tmp / f"round{number}").mkdir()
            rounds.append(_round(tmp, work, scale, lambda step, n=number: say(f"round {n} of {repeat}: {step}"),
                                 deployment_scale))
            shutil.rmtree(work)  # a round's warehouses and copies (~1 GB at the default size) go before the next
    ratios = [_round_ratios(r) for r in rounds]

    def figure(scenario: str, key: str = "seconds") -> float:
        return statistics.median(r[scenario][key] for r in rounds)

    def ratio(name: str) -> float:
        return statistics.median(x[name] for x in ratios)

    share, rss_ratio = ratio("increment_share"), ratio("rss_ratio")
    partitioned = {size: {key: (rounds[0]["partitioned"][size][key] if key in ("shards", "records") else
                                statistics.median(r["partitioned"][size][key] for r in rounds))
                          for key in rounds[0]["partitioned"][size]}
                   for size in ("full", "scaled")}
    return IncrementalBench(
        patients=patients, full_records=rounds[0]["full"]["records_in"], full_seconds=round(figure("full"), 2),
        full_peak_rss_mib=round(figure("full", "peak_rss_mib")),
        full_worker_peak_rss_mib=round(figure("full", "worker_peak_rss_mib")),
        rerun_seconds=round(figure("rerun"), 2),
        rerun_command_seconds=round(figure("rerun_command"), 2),
        increment_records=rounds[0]["increment"]["records_in"], increment_seconds=round(figure("increment"), 2),
        increment_share=round(share, 4), scaled_patients=patients * scale,
        scaled_records=rounds[0]["scaled"]["records_in"], scaled_seconds=round(figure("scaled"), 2),
        scaled_peak_rss_mib=round(figure("scaled", "peak_rss_mib")),
        scaled_worker_peak_rss_mib=round(figure("scaled", "worker_peak_rss_mib")),
        rss_ratio=round(rss_ratio, 3), rerun_within_target=figure("rerun") < RERUN_TARGET_SECONDS,
        increment_within_target=share < INCREMENT_TARGET_SHARE, rss_within_target=rss_ratio < RSS_TARGET_RATIO,
        archive_full_seconds=round(figure("archive_full"), 2),
        archive_files_moved=rounds[0]["archive_full"]["files_archived"],
        archive_rerun_seconds=round(figure("archive_rerun"), 2),
        archive_increment_seconds=round(figure("archive_increment"), 2),
        # against the full load without an archive: moving the files is not part of what the increment is compared with
        archive_increment_share=round(ratio("archive_increment_share"), 4),
        partitioned=partitioned,
        partitioned_rss_ratio={process: round(ratio(f"partitioned_{process}"), 3) for process in PARTITIONED_PROCESSES},
        rounds=[{"full_seconds": round(r["full"]["seconds"], 2), **{k: round(v, 3) for k, v in x.items()}}
                for r, x in zip(rounds, ratios, strict=True)],
        scaled_increment_records=rounds[0]["scaled_increment"]["records_in"],
        scaled_increment_seconds=round(figure("scaled_increment"), 2),
        scaled_increment_share=round(ratio("scaled_increment_share"), 4),
        **_deployment_figures(deployment_scale, rounds, figure, ratio))


def _deployment_figures(deployment_scale: int, rounds: list[dict], figure, ratio) -> dict:
    """Step 8's fields of IncrementalBench ({} when it did not run)."""
    if not deployment_scale:
        return {}
    return {"deployment_scale": deployment_scale, "deployment_records": rounds[0]["deployment_full"]["records_in"],
            "deployment_seconds": round(figure("deployment_full"), 2),
            "deployment_increment_records": rounds[0]["deployment_increment"]["records_in"],
            "deployment_increment_seconds": round(figure("deployment_increment"), 2),
            "deployment_increment_share": round(ratio("deployment_increment_share"), 4)}


def headline(b: dict) -> str:
    """The figures the targets are about, on one line (`karte bench --history`)."""
    archived = (f"; with an archive re-run {b['archive_rerun_seconds']:.2f} s, +1 % {b['archive_increment_share']:.1%}"
                if "archive_increment_share" in b else "")
    if b.get("partitioned_rss_ratio"):
        scale = b["partitioned"]["scaled"]["shards"] // b["partitioned"]["full"]["shards"]
        archived += f"; partitioned {scale} × input {max(b['partitioned_rss_ratio'].values()):.2f}× peak RSS"
    scaled = (f" (at {b['scaled_patients'] // b['patients']} × the data {b['scaled_increment_share']:.1%})"
              if b.get("scaled_increment_records") else "")
    if b.get("deployment_scale"):
        scaled += f" (at {b['deployment_scale']} × as deployed {b['deployment_increment_share']:.1%})"
    return (f"re-run {b['rerun_seconds']:.2f} s, +1 % data {b['increment_share']:.1%} of the full load "
            f"({b['full_seconds']:.2f} s){scaled}, 4 × input {b['rss_ratio']:.2f}× peak RSS{archived}")


def table(b: dict) -> str:
    def verdict(ok: bool) -> str:
        return "meets target" if ok else "MISSES target"

    lines = [
        f"incremental benchmark: {b['patients']:,} patients ({b['full_records']:,} records), fresh process each",
        (f"  full load                        {b['full_seconds']:>7.2f} s   peak RSS {b['full_peak_rss_mib']:,} MiB "
        f"(largest pool worker {b['full_worker_peak_rss_mib']:,} MiB)"),
        (f"  re-run, nothing new              {b['rerun_seconds']:>7.2f} s   in ingest() and the close "
        f"({b['rerun_command_seconds']:.2f} s for the whole `karte ingest` command)   "
        f"{verdict(b['rerun_within_target'])} < {RERUN_TARGET_SECONDS:g} s"),
        (f"  +1 % new data ({b['increment_records']:,} records)  {b['increment_seconds']:>7.2f} s   "
        f"{b['increment_share']:.1%} of the full load   {verdict(b['increment_within_target'])} < "
        f"{INCREMENT_TARGET_SHARE:.0%}"),
        (f"  {b['scaled_patients'] // b['patients']}× input ({b['scaled_records']:,} records)   "
        f"{b['scaled_seconds']:>7.2f} s   peak RSS {b['scaled_peak_rss_mib']:,} MiB = {b['rss_ratio']:.2f}× "
        f"the full load's "
        f"(worker {b['scaled_worker_peak_rss_mib']:,} MiB)   {verdict(b['rss_within_target'])} < {RSS_TARGET_RATIO:g}×"),
    ]
    if b.get("scaled_increment_records"):  # reports written before step 7 lack it
        times = b["scaled_patients"] // b["patients"]
        lines.append(
            f"  +1 % new data at {times}× ({b['scaled_increment_records']:,} records) "
            f"{b['scaled_increment_seconds']:>5.2f} s   {b['scaled_increment_share']:.1%} of the {times}× input's full "
            f"load   {verdict(b['scaled_increment_share'] < INCREMENT_TARGET_SHARE)} < {INCREMENT_TARGET_SHARE:.0%} "
            f"at that size")
    if b.get("deployment_scale"):  # step 8 runs only when asked
        times = b["deployment_scale"]
        lines.append(
            f"  +1 % new data at {times}× as deployed ({b['deployment_increment_records']:,} records, archived inbox) "
            f"{b['deployment_increment_seconds']:.2f} s   {b['deployment_increment_share']:.1%} of the {times}× "
            f"input's full load ({b['deployment_records']:,} records, {b['deployment_seconds']:.2f} s)   "
            f"{verdict(b['deployment_increment_share'] < INCREMENT_TARGET_SHARE)} < {INCREMENT_TARGET_SHARE:.0%} at "
            f"that size")
    if "archive_increment_share" in b:  # reports written before the archive scenario lack it
        lines.append(
            f"  with an archive (KARTE_ARCHIVE): full load {b['archive_full_seconds']:.2f} s "
            f"({b['archive_files_moved']:,} files moved), re-run {b['archive_rerun_seconds']:.2f} s, "
            f"+1 % {b['archive_increment_seconds']:.2f} s = {b['archive_increment_share']:.1%} of the full load above")
    if b.get("partitioned"):  # and those before the partitioned scenario lack this
        full, scaled, ratio = b["partitioned"]["full"], b["partitioned"]["scaled"], b["partitioned_rss_ratio"]
        worst = max(ratio.values())
        lines.append(
            f"  partitioned ingest, {scaled['shards'] // full['shards']}× input on {scaled['shards']} shards against "
            f"{full['shards']}: {full['seconds']:.2f} → {scaled['seconds']:.2f} s; peak RSS merging process "
            f"{full['peak_rss_mib']:,} → {scaled['peak_rss_mib']:,} MiB ({ratio['peak_rss_mib']:.2f}×), largest map "
            f"process {full['worker_peak_rss_mib']:,} → {scaled['worker_peak_rss_mib']:,} MiB "
            f"({ratio['worker_peak_rss_mib']:.2f}×)   {verdict(worst < RSS_TARGET_RATIO)} < {RSS_TARGET_RATIO:g}×")
    if len(b.get("rounds", [])) > 1:
        def each(key: str, form: str) -> str:
            return "[" + ", ".join(format(r[key], form) for r in b["rounds"] if key in r) + "]"

        lines.append(
            f"  rounds (medians count, ratios each round's own): full load {each('full_seconds', '.2f')} s, "
            f"+1 % {each('increment_share', '.1%')} (at {b['scaled_patients'] // b['patients']}× "
            f"{each('scaled_increment_share', '.1%')}), {b['scaled_patients'] // b['patients']}× input peak RSS "
            f"{each('rss_ratio', '.2f')}, partitioned merging {each('partitioned_peak_rss_mib', '.2f')} and map "
            f"{each('partitioned_worker_peak_rss_mib', '.2f')}"
            + (f", at {b['deployment_scale']}× as deployed {each('deployment_increment_share', '.1%')}"
               if b.get("deployment_scale") else ""))
    return "\n".join(lines)
