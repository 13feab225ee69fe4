"""閲覧履歴 for one patient — what マイナポータル shows: every access to their record, newest first.

The insurance identifier is hashed on the spot with the warehouse's pseudonym key and never stored or
printed. Only kinds of information are listed, never the records themselves, so 未告知 (UNINFORMED)
diagnoses cannot appear.
"""

import csv
import io
import json

import duckdb
import polars as pl

from pipelines.fhir.systems import INFORMATION_KINDS
from pipelines.ingest.pseudonym import patient_key
from pipelines.validation.ig_rules import MEMBER_ID_RE

PURPOSE_JA = {"TREAT": "診療", "ETREAT": "救急診療(同意不要・事後確認対象)"}
COLUMNS_JA = {"recorded": "閲覧日時 When", "facility_name": "医療機関 Facility", "institution_number": "医療機関番号",
              "kinds": "閲覧した情報 Kinds viewed", "purpose": "目的 Purpose"}


class PatientIdentifierError(ValueError):
    """The given identifier is not a 被保険者個人識別子."""


def access_history(con: duckdb.DuckDBPyConnection, member_id: str, key: bytes) -> pl.DataFrame:
    """grain: one row per access to the patient's record, newest first (times in JST)."""
    if not pl.Series([member_id]).str.contains(MEMBER_ID_RE)[0]:
        raise PatientIdentifierError("expected 保険者番号8桁:記号:番号:枝番, e.g. 00012345:あいう:１８７:05")
    frame = con.execute(
        """
        SELECT strftime(a.recorded AT TIME ZONE 'Asia/Tokyo', '%Y-%m-%d %H:%M') AS recorded,
               coalesce(f.facility_name, '(未登録の医療機関)') AS facility_name, a.viewer AS institution_number,
               a.kinds, a.purpose
        FROM core.access_event a LEFT JOIN core.facility f ON f.institution_number = a.viewer
        WHERE a.patient_key = ?
        ORDER BY a.recorded DESC, a.access_id
        """,
        [patient_key(member_id, key)],
    ).pl()
    kinds_ja = {k: f"{v} ({k})" for k, v in INFORMATION_KINDS.items()}
    return frame.with_columns(
        kinds=pl.col("kinds").list.eval(pl.element().replace(kinds_ja)).list.join("、"),
        purpose=pl.col("purpose").replace(PURPOSE_JA),
    )


def render(frame: pl.DataFrame, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(frame.to_dicts(), ensure_ascii=False, indent=1)
    out = io.StringIO()
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([COLUMNS_JA[c] for c in frame.columns])
        writer.writerows(frame.iter_rows())
        return out.getvalue()
    if frame.is_empty():
        return "閲覧履歴はありません (no access recorded)\n"
    for row in frame.iter_rows(named=True):
        out.write(f"{row['recorded']}  {row['facility_name']} ({row['institution_number']})  "
                  f"{row['kinds']}  [{row['purpose']}]\n")
    return out.getvalue()
