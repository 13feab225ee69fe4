"""A minimal Office Open XML (.xlsx) writer on the standard library and polars: one sheet per frame, a bold frozen
header row, dates as dates, percentages with one decimal. Both the adoption and the audit workbooks use it.

Why not polars' write_excel: it needs xlsxwriter, a Python loop per cell (the audit's case list at national scale
— hundreds of thousands of findings — took minutes). The format needed here is a small, stable subset of ECMA-376
(shared and inline strings, numbers, booleans, one style sheet); the sheet XML is built column-wise with polars string
expressions, never cell by cell, and written deterministically (fixed zip timestamps), so the same report gives the
same bytes.
"""

import re
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import polars as pl
import pyarrow as pa

_EPOCH = date(1899, 12, 30)  # Excel's day 0 (with the 1900 leap-year quirk already absorbed)
_ZIP_TIME = (2000, 1, 1, 0, 0, 0)
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ILLEGAL_XML_RUST = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x{FFFE}\x{FFFF}]"  # the same class in polars' regex syntax
MAX_ROWS = 1_048_576
MAX_SHEET_NAME = 31
#: rows of sheet XML built and compressed at a time (bounds the memory of a national-size sheet)
ROWS_PER_CHUNK = 50_000
_ROW = "__xlsx_row"

_STYLES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">
<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/><numFmt numFmtId="165" formatCode="0.0"/></numFmts>
<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font><font><b/><sz val="11"/><name val="Calibri"/></font></fonts>
<fills count="3"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill>
<fill><patternFill patternType="solid"><fgColor rgb="FFEFEFEF"/><bgColor indexed="64"/></patternFill></fill></fills>
<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>
<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>
<xf numFmtId="0" fontId="1" fillId="2" borderId="0" xfId="0" applyFont="1" applyFill="1"/>
<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>
<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>
</styleSheet>"""
_HEADER, _DATE, _DECIMAL = 1, 2, 3


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _text(value: str) -> str:
    return escape(_ILLEGAL_XML.sub("", value))


def _text_expr(expr: pl.Expr) -> pl.Expr:
    """_text as a polars expression: illegal XML characters dropped, then &, <, > escaped."""
    return (expr.str.replace_all(_ILLEGAL_XML_RUST, "").str.replace_all("&", "&amp;", literal=True)
            .str.replace_all("<", "&lt;", literal=True).str.replace_all(">", "&gt;", literal=True))


class SharedStrings:
    """The workbook's shared-string table (xl/sharedStrings.xml). A text column whose values repeat (months,
    prefectures, segments, rule ids) is written as indices into it: a national sheet's XML shrinks to a fraction
    and its cells are numbers, not copies of the text."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.references = 0

    def indices(self, column: pl.Series) -> pl.Series:
        """`column` (text) as indices into the table, after adding its distinct values; null stays null."""
        distinct = column.drop_nulls().unique().sort().to_list()
        base = len(self.values)
        self.values.extend(distinct)
        self.references += column.len() - column.null_count()
        # an Enum's physical value is the position of its category: a hash lookup per row, where a dense rank
        # sorted the column (≈ 3× as long on a national sheet's columns)
        return column.cast(pl.Enum(distinct)).to_physical().cast(pl.Int64) + base

    def xml(self) -> bytes:
        items = "".join(f'<si><t xml:space="preserve">{_text(v)}</t></si>' for v in self.values)
        return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
                f'count="{self.references}" uniqueCount="{len(self.values)}">{items}</sst>').encode()


def _shared(column: pl.Series) -> bool:
    """Whether a text column repeats enough to be worth the shared-string table (four uses per value or more)."""
    return column.len() >= 4 and column.n_unique() * 4 <= column.len()


def _cell_expr(name: str, dtype: pl.DataType, decimal: bool, shared: bool) -> pl.Expr:
    """One cell of every row of column `name` as XML text; an empty cell (<c/>) for a null value or a non-finite
    float. Booleans t="b", dates (and datetimes, by their date) as day numbers with the date style, numbers as
    numbers, text shared (t="s", the column already replaced by its indices) or inline.

    A cell has no reference (r="B17"): ECMA-376 makes it optional (§18.3.1.4), a cell without one being the
    next column of its row, so every row writes every column. openpyxl reads it so (tests/reports/test_xlsx.py);
    Excel and LibreOffice open such files (Microsoft's own exporters write them). Without the references the
    national adoption workbook went from 46 to 22 MB and its writing from 1.9 to 1.4 s: all different, they
    were most of what deflate could not compress."""
    col = pl.col(name)
    if shared:
        parts = [pl.lit('<c t="s"><v>'), col.cast(pl.String), pl.lit("</v></c>")]
    elif dtype == pl.Boolean:
        parts = [pl.lit('<c t="b"><v>'), col.cast(pl.Int8).cast(pl.String), pl.lit("</v></c>")]
    elif dtype == pl.Date or isinstance(dtype, pl.Datetime):
        day = col.dt.date() if isinstance(dtype, pl.Datetime) else col
        parts = [pl.lit(f'<c s="{_DATE}"><v>'), (day - pl.lit(_EPOCH)).dt.total_days().cast(pl.String),
                 pl.lit("</v></c>")]
    elif dtype.is_integer():
        parts = [pl.lit('<c><v>'), col.cast(pl.String), pl.lit("</v></c>")]
    elif dtype.is_float():
        value = pl.when(col.is_finite()).then(col.cast(pl.Float64).cast(pl.String))
        parts = [pl.lit(f'<c s="{_DECIMAL}"><v>' if decimal else '<c><v>'), value, pl.lit("</v></c>")]
    else:
        parts = [pl.lit('<c t="inlineStr"><is><t xml:space="preserve">'), _text_expr(col), pl.lit("</t></is></c>")]
    return pl.concat_str(parts).fill_null("<c/>")


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Columns of other shapes (categoricals, lists, decimals) as their text, the way the sheet shows them."""
    def text(name: str, dtype: pl.DataType) -> pl.Expr:
        if isinstance(dtype, (pl.Categorical, pl.Enum)):
            return pl.col(name).cast(pl.String)
        return pl.col(name).map_elements(str, return_dtype=pl.String)  # rare shapes: their str()

    plain = (pl.Boolean, pl.Date, pl.String)
    odd = [text(n, t) for n, t in frame.schema.items()
           if not (t in plain or isinstance(t, pl.Datetime) or t.is_integer() or t.is_float())]
    return frame.with_columns(odd) if odd else frame


def _concatenated(rows: pl.Series) -> memoryview:
    """The UTF-8 bytes of every string of `rows`, one after the other, without copying them into Python: an Arrow
    string array keeps its values contiguous, so the concatenation is a slice of its data buffer."""
    array = rows.to_arrow()
    if not pa.types.is_large_string(array.type):
        array = array.cast(pa.large_string())
    _, offsets, data = array.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)
    return memoryview(data)[bounds[array.offset]:bounds[array.offset + len(array)]]


def _sheet_chunks(frame: pl.DataFrame, headers: list[str], strings: SharedStrings,
                  rows_per_chunk: int = ROWS_PER_CHUNK) -> Iterator[bytes | memoryview]:
    """The worksheet XML in pieces, so a national-size table never sits in memory as one string."""
    decimal = [c.endswith(("_pct", "_per_month", "_pp")) for c in frame.columns]
    widths = [min(max(len(h) * 2 + 2, 10), 50) for h in headers]
    cols = "".join(f'<col min="{j + 1}" max="{j + 1}" width="{w}" customWidth="1"/>' for j, w in enumerate(widths))
    # the used range up front: readers that stream (openpyxl read-only) take the sheet's size from it
    last = f"{column_letter(max(frame.width, 1) - 1)}{min(frame.height, MAX_ROWS - 1) + 1}"
    head = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            f'<dimension ref="A1:{last}"/><sheetViews><sheetView workbookViewId="0"><pane ySplit="1" '
            'topLeftCell="A2" activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>'
            f'<cols>{cols}</cols><sheetData><row r="1">' + "".join(
                f'<c r="{column_letter(j)}1" t="inlineStr" s="{_HEADER}"><is><t>{_text(h)}</t></is></c>'
                for j, h in enumerate(headers)) + "</row>")
    yield head.encode("utf-8")
    body = _as_text(frame.head(MAX_ROWS - 1))
    schema = body.schema
    shared = {n for n, t in schema.items() if t == pl.String and _shared(body[n])}
    body = body.with_columns(strings.indices(body[n]).alias(n) for n in shared)
    cells = [_cell_expr(name, schema[name], decimal[j], name in shared)
             for j, name in enumerate(frame.columns)]
    row = pl.concat_str([pl.lit('<row r="'), pl.col(_ROW), pl.lit('">'), *cells, pl.lit("</row>")])
    body = body.with_row_index(_ROW, offset=2).with_columns(pl.col(_ROW).cast(pl.String))
    for offset in range(0, body.height, rows_per_chunk):
        yield _concatenated(body.slice(offset, rows_per_chunk).select(row).to_series())
    yield b"</sheetData></worksheet>"


def _sheet_name(name: str, used: set[str]) -> str:
    clean = re.sub(r"[\[\]:*?/\\]", "_", name)[:MAX_SHEET_NAME] or "Sheet"
    candidate, n = clean, 2
    while candidate in used:
        suffix = f" ({n})"
        candidate, n = clean[:MAX_SHEET_NAME - len(suffix)] + suffix, n + 1
    used.add(candidate)
    return candidate


def write_xlsx(path: Path, sheets: list[tuple[str, pl.DataFrame, list[str]]]) -> Path:
    """Write `sheets` — (sheet name, frame, header labels) — as one workbook."""
    used: set[str] = set()
    names = [_sheet_name(name, used) for name, _, _ in sheets]
    content_types = "".join(
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        for i in range(1, len(sheets) + 1))
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/styles.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            '<Override PartName="/xl/sharedStrings.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
            f'{content_types}</Types>'),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>'),
        "xl/workbook.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>'
            + "".join(f'<sheet name="{_text(n)}" sheetId="{i}" r:id="rId{i}"/>' for i, n in enumerate(names, 1))
            + "</sheets></workbook>"),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            + "".join(f'<Relationship Id="rId{i}" '
                      'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
                      f'Target="worksheets/sheet{i}.xml"/>' for i in range(1, len(sheets) + 1))
            + f'<Relationship Id="rId{len(sheets) + 1}" '
              'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" '
              'Target="styles.xml"/>'
            + f'<Relationship Id="rId{len(sheets) + 2}" '
              'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
              'Target="sharedStrings.xml"/></Relationships>'),
        "xl/styles.xml": _STYLES,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Deflate level 1: a national sheet is hundreds of MB of XML; level 6 takes ~2.5x as long for a file ~20 %
    # smaller. Compressing runs in a second thread (zlib releases the GIL) while polars builds the next piece.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf, \
            ThreadPoolExecutor(max_workers=1) as writer:
        for name, text in parts.items():
            zf.writestr(_entry(name), text.encode("utf-8"))
        strings = SharedStrings()
        for i, (_, frame, headers) in enumerate(sheets, start=1):
            with zf.open(_entry(f"xl/worksheets/sheet{i}.xml"), "w", force_zip64=True) as stream:
                pending = None
                for piece in _sheet_chunks(frame, headers, strings):
                    if pending is not None:
                        pending.result()  # one piece in flight: memory stays bounded, order is kept
                    pending = writer.submit(stream.write, piece)
                if pending is not None:
                    pending.result()
        zf.writestr(_entry("xl/sharedStrings.xml"), strings.xml())
    return path


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)  # fixed time: the same workbook gives the same bytes
    info.compress_type = zipfile.ZIP_DEFLATED
    try:
        info.compress_level = 1  # Python ≥ 3.13
    except AttributeError:
        info._compresslevel = 1  # Python 3.11–3.12: ZipFile.open(info) reads the private slot
    return info
