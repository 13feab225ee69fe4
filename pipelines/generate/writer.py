"""Streaming output: FHIR files named <医療機関番号>_<YYYYMMDD>_<seq>, monthly NDJSON, deterministic bytes."""

import gzip
import random
import shutil
from datetime import date
from pathlib import Path
from typing import BinaryIO

import orjson

OWNED = ("fhir", "consent", "access", "facilities", "checkups", "_truth", "_tmp", "_manifest.json")


def dumps(obj, pretty: bool = False) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 if pretty else 0)


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)  # mtime 0: identical bytes on every run


def prepare_out_dir(out: Path) -> None:
    """Create OUT; a previous generator output there (it has _manifest.json) is replaced, anything else refused."""
    out.mkdir(parents=True, exist_ok=True)
    previous = (out / "_manifest.json").exists() or (out / "_tmp").exists()
    for name in OWNED:
        path = out / name
        if not path.exists():
            continue
        if not previous and (path.is_file() or any(path.iterdir())):
            raise FileExistsError(f"{path} exists and is not a previous generator output; choose an empty --out")
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


class FhirFiles:
    def __init__(self, out: Path):
        self.out = out
        self.root = out / "fhir"
        self.root.mkdir(parents=True, exist_ok=True)
        self.seq: dict[tuple[str, date], int] = {}

    def next_name(self, inst: str, day: date, ext: str) -> str:
        n = self.seq[(inst, day)] = self.seq.get((inst, day), 0) + 1
        return f"{inst}_{day:%Y%m%d}_{n:03d}{ext}"

    def write(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return f"fhir/{name}"


class MonthlyNdjson:
    """Lines keyed by `<instant>|<id>` go to one temp file per month; `finalize` writes each month sorted."""

    def __init__(self, out: Path, subdir: str, prefix: str):
        self.out = out
        self.subdir = subdir
        self.prefix = prefix
        self.tmp = out / "_tmp" / prefix
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.handles: dict[str, BinaryIO] = {}
        self.count = 0

    def add(self, key: str, month: str, line: bytes) -> None:
        fh = self.handles.get(month)
        if fh is None:
            # kept open across add() calls (one per month); closed in finalize()
            fh = self.handles[month] = open(self.tmp / f"{month}.part", "ab")  # noqa: SIM115
        fh.write(key.encode("utf-8") + b"\t" + line + b"\n")
        self.count += 1

    def finalize(self, rng: random.Random | None = None, swap_share: float = 0.0,
                 watch: set[str] | None = None) -> dict[str, tuple[str, int]]:
        """Write `<subdir>/<prefix>_<YYYYMM>.ndjson`; with `rng`, swap a share of neighbours (out-of-order events).
        Returns {id: (relpath, 1-based line)} for the ids in `watch`."""
        for fh in self.handles.values():
            fh.close()
        positions: dict[str, tuple[str, int]] = {}
        target = self.out / self.subdir
        target.mkdir(parents=True, exist_ok=True)
        for month in sorted(self.handles):
            rows = []
            with open(self.tmp / f"{month}.part", "rb") as fh:
                for raw in fh:
                    key, line = raw.rstrip(b"\n").split(b"\t", 1)
                    rows.append((key.decode("utf-8"), line))
            rows.sort(key=lambda r: r[0])
            if rng is not None:
                for i in range(len(rows) - 1):
                    if rng.random() < swap_share:
                        rows[i], rows[i + 1] = rows[i + 1], rows[i]
            rel = f"{self.subdir}/{self.prefix}_{month}.ndjson"
            with open(self.out / rel, "wb") as fh:
                for n, (key, line) in enumerate(rows, start=1):
                    fh.write(line + b"\n")
                    if watch:
                        rid = key.split("|", 1)[1]
                        if rid in watch:
                            positions[rid] = (rel, n)
        shutil.rmtree(self.tmp)
        return positions
