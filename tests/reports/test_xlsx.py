"""The workbook writer (pipelines/reports/xlsx.py) read back by openpyxl: every value lands in its own column even
where cells around it are empty (cells carry no reference of their own), in every column type, and the same
frames give the same bytes."""

import math
import zipfile
from datetime import date, datetime

import openpyxl
import polars as pl
import pytest

from pipelines.reports.xlsx import ROWS_PER_CHUNK, write_xlsx


def _frame() -> pl.DataFrame:
    return pl.DataFrame({
        "医療機関番号": ["1311234567", None, "２７１２３４５６７８", "0112345678"],
        "name": ["東京クリニック & <内科>", "北海道病院", None, "bell\x07 removed"],
        "count": [1, None, 3, 0],
        "rate_pct": [12.34, math.nan, None, math.inf],
        "day": [date(2026, 4, 1), None, date(2030, 3, 31), date(1999, 12, 31)],
        "at": [datetime(2026, 4, 1, 9, 30), None, None, datetime(2030, 1, 2, 3, 4)],
        "ok": [True, None, False, True],
        "segment": ["clinic", "clinic", "clinic", None],  # repeats: written through the shared-string table
    })


EXPECTED = [
    ("1311234567", "東京クリニック & <内科>", 1, 12.34, datetime(2026, 4, 1), datetime(2026, 4, 1), True, "clinic"),
    (None, "北海道病院", None, None, None, None, None, "clinic"),
    ("２７１２３４５６７８", None, 3, None, datetime(2030, 3, 31), None, False, "clinic"),
    ("0112345678", "bell removed", 0, None, datetime(1999, 12, 31), datetime(2030, 1, 2), True, None),
]


@pytest.mark.parametrize("read_only", [False, True])
def test_values_read_back_in_their_columns(tmp_path, read_only):
    frame = _frame()
    path = write_xlsx(tmp_path / "t.xlsx", [("施設", frame, ["番号", *frame.columns[1:]]), ("empty", frame.head(0), [])])
    book = openpyxl.load_workbook(path, read_only=read_only)
    assert book.sheetnames == ["施設", "empty"]
    rows = list(book["施設"].iter_rows(values_only=True))
    assert rows[0] == ("番号", *frame.columns[1:])
    assert rows[1:] == EXPECTED
    if not read_only:  # styles are read in full mode only
        assert book["施設"]["D2"].number_format == "0.0" and book["施設"]["E2"].number_format == "yyyy-mm-dd"


def test_a_sheet_longer_than_one_chunk_keeps_its_rows_in_order(tmp_path):
    n = ROWS_PER_CHUNK + 7
    frame = pl.DataFrame({"i": range(n), "even": [None if i % 2 else "偶数" for i in range(n)]})
    path = write_xlsx(tmp_path / "long.xlsx", [("long", frame, ["i", "even"])])
    rows = list(openpyxl.load_workbook(path, read_only=True)["long"].iter_rows(values_only=True))
    assert len(rows) == n + 1
    assert rows[1] == (0, "偶数") and rows[2] == (1, None) and rows[-1] == (n - 1, None if (n - 1) % 2 else "偶数")


def test_same_frames_same_bytes(tmp_path):
    frame = _frame()
    first = write_xlsx(tmp_path / "a.xlsx", [("s", frame, frame.columns)]).read_bytes()
    assert write_xlsx(tmp_path / "b.xlsx", [("s", frame, frame.columns)]).read_bytes() == first
    with zipfile.ZipFile(tmp_path / "a.xlsx") as zf:
        assert zf.testzip() is None
