"""Archiving: after a run, the finished inbox files move out of the inbox (KARTE_ARCHIVE, `--archive`).

Landing stats every file in the inbox on every run (so that a file changed in place is seen), so an inbox that
keeps everything it ever received makes each run pay for all of it: 0.31 s per 23,000 files on the bench
machine, and more with every day a national inbox keeps (docs/capacity.md). With an archive, a run scans what
arrived since the last one.

A file moves only when every record of it has ended somewhere (ops.file_manifest.reported_batch_id is set: loaded,
duplicate, tombstoned or quarantined), so a crashed or unfinished run leaves its files where the next run looks,
and the run that finishes them moves them (the files are those the landing found in the inbox: its sighting
cache, not only this run's sightings). A sighted copy of content already ingested (a resubmission) moves too.
The archive keeps the inbox's relative paths; a name already taken there by other content gets the content's
hash before its suffixes, and a byte-identical copy of a file already archived is simply removed. A file that
cannot be moved stays in the inbox with the reason in the result: archiving never fails a run whose data is
committed.
"""

import errno
import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipelines.config import ConfigError
from pipelines.ingest.landing import INBOX_FOLDERS, sha256_of
from pipelines.warehouse import transaction


class ArchiveConfigError(ConfigError):
    """The archive folder would be read again as inbox input (load_settings refuses it)."""


@dataclass
class ArchiveResult:
    moved: int = 0
    removed_as_copies: int = 0
    #: (inbox-relative path, why it stayed)
    kept: list[tuple[str, str]] = field(default_factory=list)


def check_archive(inbox: Path, archive: Path) -> None:
    """An archive inside one of the inbox's kind folders would be landed again on every run (as duplicates)."""
    archive, inbox = archive.resolve(), inbox.resolve()
    for folder in INBOX_FOLDERS:
        if archive == inbox / folder or (inbox / folder) in archive.parents:
            raise ArchiveConfigError(f"archive {archive} is inside the inbox's {folder}/ folder, so its files would "
                                     f"be read again; use a folder outside {inbox}/{folder}/ (e.g. {inbox}/_archive)")
    if archive == inbox:
        raise ArchiveConfigError(f"archive {archive} is the inbox itself")


def finished_files(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(inbox-relative path, sha256) of every file the last landing found in the inbox whose content is fully
    accounted: this run's, and one an earlier run sighted but left unfinished (landing records a file left
    unchanged only once)."""
    return con.execute(
        """SELECT c.path, c.sha256 FROM ops.file_sighting_cache c JOIN ops.file_manifest m USING (sha256)
           WHERE m.reported_batch_id IS NOT NULL ORDER BY c.path""").fetchall()


def archived_name(destination: Path, sha256: str) -> Path:
    """`destination` with the content's hash before its suffixes (a.ndjson.gz → a.<hash12>.ndjson.gz). A file
    landing could not hash (a link, an unreadable file: "symlink:<path>") gets a hash of that marker instead."""
    token = sha256 if re.fullmatch(r"[0-9a-f]{64}", sha256) else hashlib.sha256(sha256.encode()).hexdigest()
    stem, dot, suffixes = destination.name.partition(".")
    return destination.with_name(f"{stem}.{token[:12]}{dot}{suffixes}")


def archive_finished_files(con: duckdb.DuckDBPyConnection, inbox: Path, archive: Path) -> ArchiveResult:
    """Move the finished files (finished_files) from `inbox` to `archive` (same relative paths), and forget their
    sighting-cache rows: a new file later put at the same path is hashed, not taken for the old one. `archive` is
    Settings.archive, which load_settings has checked (check_archive)."""
    result, gone, folders = ArchiveResult(), [], set()
    for relpath, sha256 in finished_files(con):
        source, destination = inbox / relpath, archive / relpath
        if not os.path.lexists(source):
            continue  # moved or deleted since it was sighted: nothing to do
        try:
            if destination.parent not in folders:
                destination.parent.mkdir(parents=True, exist_ok=True)
                folders.add(destination.parent)
            result_kind = _move(source, destination, sha256)
        except OSError as exc:
            result.kept.append((relpath, exc.strerror or str(exc)))
            continue
        if result_kind == "moved":
            result.moved += 1
        else:
            result.removed_as_copies += 1
        gone.append(relpath)
    if gone:
        with transaction(con):
            # a semi join: list_contains per row was quadratic (2.4 s for 23,000 files)
            con.execute("DELETE FROM ops.file_sighting_cache WHERE path IN (SELECT unnest(?))", [gone])
    return result


def _move(source: Path, destination: Path, sha256: str) -> str:
    """'moved', or 'removed' when the archive already holds these very bytes under this name or the hashed one.
    A symbolic link moves as a link: it was never followed."""
    for candidate in (destination, archived_name(destination, sha256)):
        if not os.path.lexists(candidate):
            try:
                os.rename(source, candidate)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                shutil.move(source, candidate)  # another file system: copied, then removed
            return "moved"
        if not candidate.is_symlink() and not source.is_symlink() and sha256_of(candidate) == sha256:
            source.unlink()
            return "removed"
    raise FileExistsError(17, f"{destination.name} and its hashed name are both taken by other content")
