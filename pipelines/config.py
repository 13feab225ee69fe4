"""Where things live and which key pseudonymises patients; every setting can be overridden by environment."""

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"
REFERENCE_DIR = DATA_DIR / "reference"

#: The demo key. It is public (it is in this file), so pseudonyms made with it protect nothing:
#: production deployments must set KARTE_PSEUDONYM_KEY.
DEVELOPMENT_PSEUDONYM_KEY = "karte-development-key-NOT-FOR-PRODUCTION"


@dataclass(frozen=True)
class Settings:
    warehouse: Path
    inbox: Path
    reports: Path
    pseudonym_key: bytes
    uses_development_key: bool
    structure_validation: str  # fast | strict — how base FHIR structure is checked (pipelines/ingest/structure.py)
    #: DuckDB's buffer pool during ingest (it otherwise grows to 80 % of RAM caching what it wrote): with the
    #: step windows and raw groups, this is what keeps peak memory independent of the inbox size. The two
    #: ingest lanes share it. 384MB: at 256MB, 4× and 16× the 46k-record bench sample ran out of it in two steps
    #: running side by side (they were run again alone, schedule.py); at 384MB 16× ran on two lanes throughout
    #: (peak RSS 1,311 MiB, 109 s) and 1× and 4× took the same time as at 256MB (peak 782 and 1,033 MiB, against
    #: 741–779 and 911–975). 128MB runs out with two lanes. Operators with memory to spare may raise it; DuckDB
    #: spills what it can.
    ingest_memory_limit: str = "384MB"
    #: ingest steps run at once where they are independent (pipelines/ingest/schedule.py); 1 runs them in order
    ingest_lanes: int = 2
    #: DuckDB threads of an ingest connection: one query spreads over at most this many cores, so the lanes side
    #: by side (and the raw step's reading workers, the partitioned run's map processes) do not each claim every
    #: core. Default: the cores shared among the lanes, 1 on the 2-core machine, where DuckDB's own default (a
    #: thread per core) made 4 × the bench sample take 16.8 / 16.8 s against 15.5 / 14.9 s (docs/capacity_history.md,
    #: eleventh session)
    ingest_threads: int = 1
    #: where a run moves the inbox files it finished (pipelines/ingest/archive.py); None keeps them in the inbox
    archive: Path | None = None


class ConfigError(RuntimeError):
    """The configuration is unsafe or unusable; str() is a one-line message."""


def load_settings(
    warehouse: str | os.PathLike | None = None,
    inbox: str | os.PathLike | None = None,
    reports: str | os.PathLike | None = None,
    archive: str | os.PathLike | None = None,
) -> Settings:
    key = os.environ.get("KARTE_PSEUDONYM_KEY")
    if os.environ.get("KARTE_ENV") == "production" and (not key or key == DEVELOPMENT_PSEUDONYM_KEY):
        # pseudonyms made with a public key can be reversed by anyone holding the identifiers
        raise ConfigError("KARTE_ENV=production needs KARTE_PSEUDONYM_KEY set to a secret key "
                          "(the development key is public)")
    inbox = Path(inbox or os.environ.get("KARTE_INBOX") or DATA_DIR / "inbox")
    archive = archive or os.environ.get("KARTE_ARCHIVE") or None
    if archive is not None:
        from pipelines.ingest.archive import check_archive  # the inbox's layout is landing's

        check_archive(inbox, Path(archive))  # at start-up, not after a run
    lanes = _positive_int("KARTE_INGEST_LANES", 2)
    return Settings(
        warehouse=Path(warehouse or os.environ.get("KARTE_WAREHOUSE") or DATA_DIR / "warehouse.duckdb"),
        inbox=inbox,
        reports=Path(reports or os.environ.get("KARTE_REPORTS") or DATA_DIR / "reports"),
        pseudonym_key=(key or DEVELOPMENT_PSEUDONYM_KEY).encode("utf-8"),
        uses_development_key=not key,
        structure_validation=os.environ.get("KARTE_STRUCTURE_VALIDATION", "fast"),
        ingest_memory_limit=os.environ.get("KARTE_INGEST_MEMORY_LIMIT", "384MB"),
        ingest_lanes=lanes,
        ingest_threads=_positive_int("KARTE_INGEST_THREADS", max(1, usable_cores() // lanes)),
        archive=None if archive is None else Path(archive),
    )


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container's cpuset narrows), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _positive_int(variable: str, default: int) -> int:
    text = os.environ.get(variable)
    if text is None:
        return default
    if not text.strip().isdigit() or int(text) < 1:
        raise ConfigError(f"{variable} must be a whole number of at least 1, not {text!r}")
    return int(text)
