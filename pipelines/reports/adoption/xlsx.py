"""A minimal Office Open XML (.xlsx) writer on the standard library: one sheet per frame, a bold frozen header
row, dates as dates, percentages with one decimal.

Why not polars' write_excel: it needs xlsxwriter, which is not in the lock file. The format needed here is a
small, stable subset of ECMA-376 (inline strings, numbers, booleans, one style sheet); it is written
deterministically (fixed zip timestamps), so the same report gives the same bytes.
"""

import math
import re
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from xml.sax.saxutils import escape

import polars as pl

_EPOCH = date(1899, 12, 30)  # Excel's day 0 (with the 1900 leap-year quirk already absorbed)
_ZIP_TIME = (2000, 1, 1, 0, 0, 0)
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
MAX_ROWS = 1_048_576
MAX_SHEET_NAME = 31

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


def _cell(ref: str, value, decimal: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return f'<c r="{ref}" s="{_DATE}"><v>{(value - _EPOCH).days}</v></c>'
    if isinstance(value, int):
        return f'<c r="{ref}"><v>{value}</v></c>'
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        style = f' s="{_DECIMAL}"' if decimal else ""
        return f'<c r="{ref}"{style}><v>{value!r}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{_text(str(value))}</t></is></c>'


def _sheet_chunks(frame: pl.DataFrame, headers: list[str], rows_per_chunk: int = 5000) -> Iterator[str]:
    """The worksheet XML in pieces, so a national-size table never sits in memory as one string."""
    decimal = [c.endswith(("_pct", "_per_month", "_pp")) for c in frame.columns]
    widths = [min(max(len(h) * 2 + 2, 10), 50) for h in headers]
    cols = "".join(f'<col min="{j + 1}" max="{j + 1}" width="{w}" customWidth="1"/>' for j, w in enumerate(widths))
    yield ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
           '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
           '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" '
           f'state="frozen"/></sheetView></sheetViews><cols>{cols}</cols><sheetData>')
    yield '<row r="1">' + "".join(
        f'<c r="{column_letter(j)}1" t="inlineStr" s="{_HEADER}"><is><t>{_text(h)}</t></is></c>'
        for j, h in enumerate(headers)) + "</row>"
    letters = [column_letter(j) for j in range(frame.width)]
    body = frame.head(MAX_ROWS - 1)
    for offset in range(0, body.height, rows_per_chunk):
        chunk = []
        for i, row in enumerate(body.slice(offset, rows_per_chunk).iter_rows(), start=offset + 2):
            cells = "".join(_cell(f"{letters[j]}{i}", v, decimal[j]) for j, v in enumerate(row))
            chunk.append(f'<row r="{i}">{cells}</row>')
        yield "".join(chunk)
    yield "</sheetData></worksheet>"


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
              'Target="styles.xml"/></Relationships>'),
        "xl/styles.xml": _STYLES,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, text in parts.items():
            zf.writestr(_entry(name), text.encode("utf-8"))
        for i, (_, frame, headers) in enumerate(sheets, start=1):
            with zf.open(_entry(f"xl/worksheets/sheet{i}.xml"), "w", force_zip64=True) as stream:
                for piece in _sheet_chunks(frame, headers):
                    stream.write(piece.encode("utf-8"))
    return path


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)  # fixed time: the same workbook gives the same bytes
    info.compress_type = zipfile.ZIP_DEFLATED
    return info
