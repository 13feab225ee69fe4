"""特定健診 ZIP archives: read in memory, never extracted; unsafe, corrupt, misnamed or miscounted archives are
rejected whole with their rule."""

import io
import os
import zipfile
from datetime import date
from pathlib import Path

import pytest

from pipelines.checkups.archive import ArchiveLimits, read_archive
from pipelines.generate.checkup_cda import archive_name, index_xml, summary_xml, zip_bytes
from tests.checkups.helpers import cda, planned

SENDER, RECEIVER, DAY = "1312345678", "01130012", date(2025, 4, 15)


def documents(n: int = 3) -> list[tuple[str, str]]:
    return [(f"DATA/{c.document_id}.xml", cda(c)) for c in planned()[:n]]


def write(tmp_path: Path, members: list[tuple[str, str]], name: str | None = None, records: int | None = None,
          subjects: int | None = None, sender: str = SENDER) -> Path:
    n = len([m for m in members if m[0].startswith("DATA/")])
    full = [("index.xml", index_xml(sender, RECEIVER, DAY, n if records is None else records)),
            ("summary.xml", summary_xml(n if subjects is None else subjects, 1000 * n)), *members]
    path = tmp_path / (name or archive_name(SENDER, RECEIVER, DAY))
    path.write_bytes(zip_bytes(full, DAY))
    return path


def raw_zip(tmp_path: Path, entries: list[tuple[str, bytes]], name: str | None = None) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for member, data in entries:
            zf.writestr(member, data)
    path = tmp_path / (name or archive_name(SENDER, RECEIVER, DAY))
    path.write_bytes(buffer.getvalue())
    return path


def test_person_documents_come_back_in_member_order(tmp_path):
    docs = documents(3)
    read = read_archive(write(tmp_path, docs + [("XSD/hc08_V08.xsd", "<schema/>"), ("CLAIMS/cc1.xml", "<c/>")]))
    assert read.error is None and read.record_count == 3
    assert read.documents == sorted(docs) and (read.sender, read.receiver) == (SENDER, RECEIVER)


def test_nothing_is_extracted(tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    path = raw_zip(tmp_path, [("index.xml", b"<index/>"), ("../escape.xml", b"<x/>")])
    assert read_archive(path).error[0] == "K-ZIP"
    read_archive(write(tmp_path, documents(1)))
    assert os.listdir(work) == [] and not (tmp_path / "escape.xml").exists()


@pytest.mark.parametrize("member", ["../evil.xml", "DATA/../../evil.xml", "/etc/evil.xml", "C:/evil.xml",
                                    "..\\evil.xml"])
def test_member_names_leaving_the_archive_are_k_zip(tmp_path, member):
    read = read_archive(raw_zip(tmp_path, [(member, b"<x/>")]))
    assert read.error[0] == "K-ZIP" and read.documents == []


def test_not_a_zip_and_truncated_zip_are_k_zip(tmp_path):
    path = tmp_path / archive_name(SENDER, RECEIVER, DAY)
    path.write_bytes(b"PK\x03\x04 this is not really a zip")
    assert read_archive(path).error[0] == "K-ZIP"
    good = write(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path, documents(2))
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert read_archive(path).error[0] == "K-ZIP"


def test_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    bomb = raw_zip(tmp_path, [("index.xml", b"<index/>"), ("DATA/bomb.xml", b"<a>" + b" " * 50_000_000 + b"</a>")])
    assert bomb.stat().st_size < 200_000
    read = read_archive(bomb)
    assert read.error[0] == "K-ZIP" and "bytes" in read.error[1]


def test_limits_on_members_and_total(tmp_path):
    path = write(tmp_path, documents(3))
    assert read_archive(path, ArchiveLimits(max_members=4)).error[0] == "K-ZIP"
    assert read_archive(path, ArchiveLimits(max_total_bytes=10_000)).error[0] == "K-ZIP"
    assert read_archive(path, ArchiveLimits(max_member_bytes=1_000)).error[0] == "K-ZIP"
    assert read_archive(path).error is None


@pytest.mark.parametrize("name", ["1312345678_01130012_20250415_1.zip", "131234567_01130012_202504151_1.zip",
                                  "1312345678_01130012_202513401_1.zip", "checkup.zip",
                                  "1312345678_01130012_202504151_1.tar"])
def test_file_name_pattern_is_k_checkup_name(tmp_path, name):
    assert read_archive(write(tmp_path, documents(1), name=name)).error[0] == "K-CHECKUP-NAME"


def test_index_sender_must_be_the_file_names(tmp_path):
    assert read_archive(write(tmp_path, documents(1), sender="9999999999")).error[0] == "K-CHECKUP-NAME"


@pytest.mark.parametrize("records, subjects", [(4, None), (None, 2), (0, 0)])
def test_counts_must_match_the_documents_held(tmp_path, records, subjects):
    read = read_archive(write(tmp_path, documents(3), records=records, subjects=subjects))
    assert read.error[0] == "K-CHECKUP-COUNT" and "3 person documents" in read.error[1]


def test_missing_or_broken_index_and_summary(tmp_path):
    docs = [(name, text.encode()) for name, text in documents(1)]
    summary = ("summary.xml", summary_xml(1, 0).encode())
    assert read_archive(raw_zip(tmp_path, [summary, *docs])).error[0] == "K-CHECKUP-COUNT"
    assert read_archive(raw_zip(tmp_path, [("index.xml", b"<index><total"), summary, *docs])).error[0] == \
        "K-CHECKUP-COUNT"
    unsafe = b'<?xml version="1.0"?><!DOCTYPE i [<!ENTITY e SYSTEM "file:///etc/passwd">]><index>&e;</index>'
    assert read_archive(raw_zip(tmp_path, [("index.xml", unsafe), summary, *docs])).error[0] == "K-XML-UNSAFE"


def test_declared_encodings_are_decoded_and_bad_bytes_are_k_encoding(tmp_path):
    name, text = documents(1)[0]
    sjis = text.replace('encoding="UTF-8"', 'encoding="Windows-31J"', 1)  # what Japanese senders' Shift_JIS is
    index = ("index.xml", index_xml(SENDER, RECEIVER, DAY, 1).encode())
    summary = ("summary.xml", summary_xml(1, 0).encode())
    read = read_archive(raw_zip(tmp_path, [index, summary, (name, sjis.encode("cp932"))]))
    assert read.error is None and read.documents == [(name, sjis)]
    read = read_archive(raw_zip(tmp_path, [index, summary, (name, text.encode("utf-8")[:-40] + b"\xff\xfe")]))
    assert read.error[0] == "K-ENCODING"
