"""The common row shape both checkup forms are mapped to: one row per person × checkup × item.

Both readers (cda.py for 特定健診 XML, fhir.py for eCheckup bundles) produce exactly these columns, in this
order and with these types, so the same checkup sent in either form gives identical rows apart from
`source_form`. The raw `member_id` leaves this package only to be hashed by the ingest.
"""

import unicodedata

import polars as pl

from pipelines.checkups.codes import PROGRAM_NAMES

ROW_SCHEMA: dict[str, pl.DataType] = {
    "member_id": pl.String,  # 保険者番号8桁:記号:番号:枝番, NFKC-normalised (raw identifier: hash it)
    "sex": pl.String,  # male | female (as sent; other/unknown kept)
    "birth_date": pl.String,  # ISO date
    "checkup_date": pl.String,  # ISO date: 健診実施日
    "program": pl.String,  # 健診プログラムサービスコード (1.2.392.200119.6.1002): 010 特定健診, 030 事業者健診 …
    "program_name": pl.String,
    "institution_number": pl.String,  # 10-digit 健診機関番号 / 医療機関番号 of the examining institution
    "document_id": pl.String,  # the report's identifier as its sender numbers it (CDA id / Composition.identifier)
    "item_code": pl.String,  # 特定健診項目コード (urn:oid:1.2.392.200119.6.1005), 17 characters
    "item_name": pl.String,  # our reference name (data/reference/checkup_items.csv); null for unknown codes
    "value_type": pl.String,  # PQ | CD | CO | ST
    "value_number": pl.Float64,  # PQ value
    "value_unit": pl.String,  # PQ unit (UCUM)
    "value_code": pl.String,  # CD / CO code
    "value_code_system": pl.String,  # CD / CO choice table as urn:oid:…
    "value_text": pl.String,  # ST value
    "interpretation": pl.String,  # H / L / N / LX (入力下限以下) / HX (入力上限以上) …
    "source_form": pl.String,  # fhir | xml
}
ROW_COLUMNS = list(ROW_SCHEMA)
#: what identifies one checkup (person × checkup) inside a frame of rows
CHECKUP_KEY = ["member_id", "sex", "birth_date", "checkup_date", "program", "institution_number", "document_id",
               "source_form"]


def member_id(insurer: str | None, symbol: str | None, number: str | None, branch: str | None) -> str:
    """`保険者番号:記号:番号:枝番` with each part NFKC-normalised and stripped (full-width digits are common)."""
    parts = [unicodedata.normalize("NFKC", p or "").strip() for p in (insurer, symbol, number, branch)]
    return ":".join(parts)


def member_id_expr(insurer: pl.Expr, symbol: pl.Expr, number: pl.Expr, branch: pl.Expr) -> pl.Expr:
    """`member_id` over columns (null 記号 / 枝番 become empty parts, as in a paper 保険証 without them)."""
    parts = [e.fill_null("").str.normalize("NFKC").str.strip_chars() for e in (insurer, symbol, number, branch)]
    return pl.concat_str(parts, separator=":")


def program_name_expr(program: pl.Expr) -> pl.Expr:
    return program.replace_strict(PROGRAM_NAMES, default=None, return_dtype=pl.String)


def empty_rows() -> pl.DataFrame:
    return pl.DataFrame(schema=ROW_SCHEMA)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Select and cast to the common shape (a missing column is a bug, not bad input: it raises)."""
    return frame.select([pl.col(c).cast(t) for c, t in ROW_SCHEMA.items()])
