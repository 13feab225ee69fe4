"""Facility registry ingest: bureau-style CSV (Japanese headers, Shift_JIS, full-width digits, 7-digit codes,
和暦 dates) lands as canonical core.facility rows; each bad row is quarantined with K-FACILITY naming its column."""

import pytest

from pipelines.config import load_settings
from pipelines.generate.common import rng_for
from pipelines.generate.facilities import institution_number
from pipelines.ingest.facility_registry import check_digit, normalise_row, parse_date
from pipelines.ingest.landing import land_files
from pipelines.ingest.run import processing_steps, start_batch, summarise
from pipelines.warehouse import connect

#: the steps a registry file goes through (an inbox holding only a registry: the FHIR stages have nothing to do)
REGISTRY_STEPS = ("raw.resource", "staging.fhir_structure", "staging.facility", "core.facility")


def ingest_registry(inbox, warehouse):
    settings = load_settings(warehouse=warehouse, inbox=inbox)
    con = connect(settings.warehouse)
    batch = start_batch(con, str(inbox))
    land_files(con, inbox, batch)
    for name, step in processing_steps(settings):
        if name in REGISTRY_STEPS:
            step(con)
    return summarise(con, batch).as_dict(), con

BUREAU_CSV = """項番,医療機関番号,医療機関名称,都道府県,施設区分,病床数,申請日,接続日,住所
1,１３,１４０２,３,東京テスト病院,東京都,病院,一般　３００／療養　１２０,令和6年10月1日,2025/1/15,東京都文京区
2,01-1101-6,札幌テストクリニック,北海道,診療所,,2025-02-01,,札幌市
3,1330001237,文京テスト歯科,13,歯科診療所,,2025-03-01,2025-05-01,文京区
4,1311402001,番号誤り病院,東京都,病院,250,,,
5,1411402006,県違い病院,東京都,病院,250,,,
6,1311402019,小さな病院,東京都,病院,12,,,
7,1311402027,種別不明,東京都,薬局,,,,
8,1311402035,日付誤り,東京都,診療所,,2025-13-40,,
9,1311402043,順序誤り,東京都,診療所,,2025-06-01,2025-05-01,
"""


def _number(first_nine: str) -> str:
    return first_nine + check_digit(first_nine)


def test_check_digit_matches_real_numbers():
    """A real bureau entry (福井県 薬局 01-40055 → 18 4 0140055) and the published example 0110113719."""
    assert check_digit("184014005") == "5"
    assert check_digit("011011371") == "9"


def test_generated_registry_numbers_carry_valid_check_digits():
    rng = rng_for(1, "test")
    for _ in range(200):
        number = institution_number(rng, "13", dental=False)
        assert number[9] == check_digit(number[:9])


def test_bureau_row_is_normalised():
    number = _number("011011101")  # 北海道, 医科, 郡市区 01, 医療機関 1101
    written = _fullwidth(number[3:])  # "０１,１１０１,ｃ" as a bureau list prints the 7-digit code
    row = normalise_row({"医療機関番号": written, "都道府県": "北海道", "施設区分": "診療所", "接続日": "R7.4.1",
                         "電話番号": "011-000-0000"})
    assert row["institution_number"] == number
    assert row["prefecture_code"] == "01" and row["facility_type"] == "clinic" and row["connected_on"] == "2025-04-01"
    assert not any(v for k, v in row.items() if k.startswith("problem_"))
    assert parse_date("令和元年5月1日").isoformat() == "2019-05-01" and parse_date("2025/2/30") is None


def test_registry_in_shift_jis_lands_in_core_and_bad_rows_are_quarantined(inbox, warehouse):
    # rows 1–3 are built with valid check digits; the others each break one rule
    text = BUREAU_CSV.replace("１３,１４０２,３", f"\"{_fullwidth(_number('131140002')[3:])}\"")
    text = text.replace("01-1101-6", _dashed(_number("011011101")[3:]))
    text = text.replace("1330001237", _number("133000123"))
    for other in ("1411402006", "1311402019", "1311402027", "1311402035", "1311402043"):
        text = text.replace(other, _number(other[:9]))  # valid numbers: these rows break another rule
    wrong = str((int(check_digit("131140200")) + 1) % 10)
    text = text.replace("1311402001", f"131140200{wrong}")
    (inbox / "facilities").mkdir()
    (inbox / "facilities" / "bureau.csv").write_bytes(text.encode("cp932"))
    summary, con = ingest_registry(inbox, warehouse)
    try:
        rows = {r[0]: r[1:] for r in con.execute(
            "SELECT institution_number, prefecture_code, score_table, facility_type, bed_count, bed_band, "
            "applied_on::VARCHAR, connected_on::VARCHAR FROM core.facility").fetchall()}
        assert rows[_number("131140002")] == ("13", "1", "hospital", 420, "400+", "2024-10-01", "2025-01-15")
        assert rows[_number("011011101")] == ("01", "1", "clinic", None, None, "2025-02-01", None)
        assert rows[_number("133000123")] == ("13", "3", "dental", None, None, "2025-03-01", "2025-05-01")
        assert len(rows) == 3
        messages = [m for (m,) in con.execute(
            "SELECT message FROM ops.quarantine WHERE rule_id = 'K-FACILITY' ORDER BY line_no").fetchall()]
        expected = [f"医療機関番号 (institution_number) 131140200{wrong}: 検証番号", "都道府県 (prefecture_code) 13 differs",
                    "病床数 (bed_count) 12 < 20", "施設区分 (facility_type) '薬局'", "申請日 (applied_on) '2025-13-40'",
                    "接続日 (connected_on) 2025-05-01 is before 申請日 (applied_on)"]
        assert len(messages) == len(expected)
        for message, fragment in zip(messages, expected):
            assert fragment in message
        assert summary["records_quarantined"] == 6 and summary["loaded_by_table"]["core.facility"] == 3
    finally:
        con.close()


def _fullwidth(seven: str) -> str:
    return ",".join(s.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
                    for s in (seven[:2], seven[2:6], seven[6]))


def _dashed(seven: str) -> str:
    return f"{seven[:2]}-{seven[2:6]}-{seven[6]}"


@pytest.mark.parametrize("row, column", [
    ({"institution_number": "13114020"}, "医療機関番号 (institution_number)"),
    ({"institution_number": "4811402001", "facility_type": "hospital", "bed_count": "30"}, "not a prefecture"),
    ({"institution_number": "1341140200", "facility_type": "clinic"}, "点数表 4"),
])
def test_each_problem_names_its_column(row, column):
    problems = [v for k, v in normalise_row(row).items() if k.startswith("problem_") and v]
    assert problems and column in problems[0]
