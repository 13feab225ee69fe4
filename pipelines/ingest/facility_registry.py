"""Facility registry rows → one canonical row each (the facility part of staging).

A registry arrives as the regional bureaus (地方厚生局) publish their コード内容別医療機関一覧表, or as an export
of the service's onboarding master: Japanese or English headers, UTF-8 or Shift_JIS (decoded in reader.py),
full-width digits, the 7-digit 医療機関コード written "01,1047,8" or "01-40055", beds written "一般 120／療養 60",
dates as 2025/4/1 or 令和7年4月1日. `normalise_row` maps the headers, normalises every value and names each
problem by its column, so the K-FACILITY quarantine message tells the sender which cell to fix.

The 医療機関番号 (10 digits) = 都道府県番号 2 + 点数表番号 1 (1 医科, 3 歯科) + 医療機関コード 7, whose last digit is
the 検証番号: modulus 10, weights 2·1 from the rightmost of the nine preceding digits (prefecture and 点数表
included), two-digit products split and summed (the Luhn scheme). Verified on a real bureau entry (福井県
01-40055 → 1840140055) and on the published example 0110113719; the six-digit variant (郡市区番号 + 医療機関番号
only) fails both. Every real number carries a 検証番号, so it is checked on every row (there is no
"has check digit" switch); a 7-digit code is completed to 10 digits from the row's 都道府県 and 点数表/施設区分.
"""

import re
import unicodedata
from datetime import date

import orjson

from pipelines.config import REFERENCE_DIR

#: canonical field → accepted headers (compared after NFKC, without spaces, brackets' content or case)
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "institution_number": ("institution_number", "医療機関番号", "医療機関コード", "保険医療機関番号",
                           "保険医療機関コード", "医療機関コード番号", "施設コード"),
    "facility_name": ("facility_name", "医療機関名称", "医療機関名", "施設名", "施設名称", "名称"),
    "prefecture_code": ("prefecture_code", "prefecture", "都道府県", "都道府県コード", "都道府県番号", "都道府県名"),
    "score_table": ("score_table", "点数表", "点数表番号", "点数表コード", "医科歯科", "医科歯科区分"),
    "facility_type": ("facility_type", "施設区分", "施設種別", "種別", "医療機関種別", "医療機関区分", "病院診療所区分"),
    "bed_count": ("bed_count", "beds", "病床数", "総病床数", "許可病床数", "病床数合計"),
    "applied_on": ("applied_on", "申請日", "利用申請日", "参加申請日"),
    "connected_on": ("connected_on", "接続日", "接続開始日", "運用開始日", "利用開始日"),
    "first_submission_on": ("first_submission_on", "初回送信日", "初回登録日", "初回提供日"),
    "first_view_on": ("first_view_on", "初回閲覧日"),
}
#: the column names used in messages: Japanese as the bureaus write them, the canonical name beside
LABELS = {
    "institution_number": "医療機関番号 (institution_number)", "facility_name": "医療機関名称 (facility_name)",
    "prefecture_code": "都道府県 (prefecture_code)", "score_table": "点数表 (score_table)",
    "facility_type": "施設区分 (facility_type)", "bed_count": "病床数 (bed_count)",
    "applied_on": "申請日 (applied_on)", "connected_on": "接続日 (connected_on)",
    "first_submission_on": "初回送信日 (first_submission_on)", "first_view_on": "初回閲覧日 (first_view_on)",
}
DATE_FIELDS = ("applied_on", "connected_on", "first_submission_on", "first_view_on")
#: the problem columns `normalise_row` fills (one quarantine row per column with a problem)
PROBLEM_FIELDS = ("institution_number", "prefecture_code", "score_table", "facility_type", "bed_count",
                  *DATE_FIELDS, "onboarding_order")

FACILITY_TYPES = {
    "hospital": "hospital", "病院": "hospital", "一般病院": "hospital", "精神科病院": "hospital", "歯科病院": "hospital",
    "clinic": "clinic", "診療所": "clinic", "一般診療所": "clinic", "医科診療所": "clinic", "有床診療所": "clinic",
    "無床診療所": "clinic", "クリニック": "clinic", "医院": "clinic",
    "dental": "dental", "歯科診療所": "dental", "歯科": "dental", "歯科医院": "dental", "歯科クリニック": "dental",
}
SCORE_TABLES = {"1": "1", "医科": "1", "3": "3", "歯科": "3"}
#: 医療法 §1-5: a 病院 has 20 beds or more, a 診療所 19 at most
HOSPITAL_MIN_BEDS = 20
_ERAS = {"令和": 2018, "平成": 1988, "昭和": 1925, "R": 2018, "H": 1988, "S": 1925}
_SEPARATORS = re.compile(r"[\s,\-.・ー‐―/]")
_BRACKETS = re.compile(r"[(（\[［【].*?[)）\]］】]")


def _prefectures() -> dict[str, str]:
    """Any spelling of a prefecture (code, 東京都, 東京, Tokyo) → its JIS code."""
    import csv

    names: dict[str, str] = {}
    with open(REFERENCE_DIR / "prefectures.csv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            code, ja, en = row["prefecture_code"], row["prefecture_name_ja"], row["prefecture_name_en"]
            names.update({code: code, str(int(code)): code, ja: code, en.lower(): code})
            if ja != "北海道":
                names[ja[:-1]] = code  # 東京都 → 東京, 大阪府 → 大阪, 青森県 → 青森
    return names


PREFECTURE_CODES = _prefectures()


def header_key(header: str) -> str:
    text = unicodedata.normalize("NFKC", header or "").lstrip("\ufeff")
    text = _BRACKETS.sub("", text)
    return re.sub(r"[\s_]", "", text).lower()


_FIELD_OF_HEADER = {header_key(alias): field for field, aliases in HEADER_ALIASES.items() for alias in aliases}


def map_headers(row: dict[str, str | None]) -> dict[str, str | None]:
    """The row's values under canonical names; unknown columns (住所, 電話番号, 項番…) are dropped. When two
    headers map to one field (都道府県 and 都道府県コード), the first non-empty value wins."""
    canonical: dict[str, str | None] = dict.fromkeys(HEADER_ALIASES)
    for header, value in row.items():
        field = _FIELD_OF_HEADER.get(header_key(header))
        if field and canonical[field] is None:
            canonical[field] = _text(value)
    return canonical


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", str(value)).strip()
    return text or None


def check_digit(first_nine: str) -> str:
    """検証番号 over 都道府県番号 + 点数表番号 + the first six digits of the 医療機関コード (see the module doc)."""
    total = 0
    for i, ch in enumerate(reversed(first_nine)):
        product = int(ch) * (2 if i % 2 == 0 else 1)
        total += product // 10 + product % 10
    return str((10 - total % 10) % 10)


def _prefecture(value: str | None) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    code = PREFECTURE_CODES.get(value) or PREFECTURE_CODES.get(value.lower())
    if code is None and value.isdigit():
        code = PREFECTURE_CODES.get(str(int(value)))
    if code is None:
        return None, f"{LABELS['prefecture_code']} {value!r} is not a prefecture (JIS 01–47 or its name)"
    return code, None


def _facility_type(value: str | None, score_table: str | None) -> tuple[str | None, str | None]:
    if value is None:
        return None, f"{LABELS['facility_type']} is missing (病院/診療所/歯科診療所 or hospital/clinic/dental)"
    ftype = FACILITY_TYPES.get(value.lower()) or FACILITY_TYPES.get(value.replace(" ", ""))
    if ftype is None:
        return None, f"{LABELS['facility_type']} {value!r} is not 病院/診療所/歯科診療所 (hospital/clinic/dental)"
    if ftype == "clinic" and score_table == "3":
        ftype = "dental"  # a 歯科 list calls its clinics 診療所: 点数表 3 makes them 歯科診療所
    return ftype, None


def _bed_count(value: str | None) -> tuple[int | None, str | None]:
    """`120`, `120床`, or the bureau style `一般 120／療養 60` (the sum of every ward's beds)."""
    if value is None:
        return None, None
    numbers = re.findall(r"\d+", value)
    if not numbers:
        return None, f"{LABELS['bed_count']} {value!r} holds no number"
    return sum(int(n) for n in numbers), None


def parse_date(value: str | None) -> date | None:
    """2025-04-01, 2025/4/1, 2025.4.1, 20250401, 2025年4月1日, 令和7年4月1日, R7.4.1; None when not a date."""
    if value is None:
        return None
    text = value.replace(" ", "")
    era = re.fullmatch(r"(令和|平成|昭和|[RHS])(元|\d{1,2})[年.\-/](\d{1,2})[月.\-/](\d{1,2})日?", text)
    if era:
        year = _ERAS[era.group(1)] + (1 if era.group(2) == "元" else int(era.group(2)))
        parts = (year, int(era.group(3)), int(era.group(4)))
    elif (m := re.fullmatch(r"(\d{4})[年.\-/](\d{1,2})[月.\-/](\d{1,2})日?", text)) or (m := re.fullmatch(r"(\d{4})(\d{2})(\d{2})", text)):
        parts = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    else:
        return None
    try:
        return date(*parts)
    except ValueError:
        return None


def _institution_number(raw: str | None, prefecture: str | None, score_table: str | None,
                        ftype: str | None) -> tuple[str | None, str | None]:
    label = LABELS["institution_number"]
    if raw is None:
        return None, f"{label} is missing"
    digits = _SEPARATORS.sub("", raw)
    if not digits.isdigit():
        return None, f"{label} {raw!r} is not a number"
    if len(digits) == 7:  # the bureau's 医療機関コード: prefix it with 都道府県 and 点数表
        table = score_table or ("3" if ftype == "dental" else "1" if ftype else None)
        if prefecture is None or table is None:
            return None, (f"{label} {raw!r} is the 7-digit 医療機関コード and the row has no "
                          f"{'都道府県' if prefecture is None else '点数表 or 施設区分'} to complete it")
        digits = f"{prefecture}{table}{digits}"
    if len(digits) != 10:
        return None, (f"{label} {raw!r} has {len(digits)} digits (expected 10: 都道府県 2 + 点数表 1 + "
                      "医療機関コード 7, or the 7-digit 医療機関コード with a 都道府県 column)")
    if not "01" <= digits[:2] <= "47":
        return None, f"{label} {digits} starts with {digits[:2]}, not a prefecture 01–47"
    if digits[2] not in "13":
        return None, f"{label} {digits} has 点数表 {digits[2]} (expected 1 医科 or 3 歯科)"
    expected = check_digit(digits[:9])
    if digits[9] != expected:
        return None, f"{label} {digits}: 検証番号 {digits[9]} should be {expected} (modulus 10, weights 2·1)"
    return digits, None


def _onboarding_order(dates: dict[str, date | None]) -> str | None:
    """Onboarding happens in order: 申請 ≤ 接続 ≤ first submission / first view."""
    a, c = dates["applied_on"], dates["connected_on"]
    if a and c and c < a:
        return f"{LABELS['connected_on']} {c} is before {LABELS['applied_on']} {a}"
    for field in ("first_submission_on", "first_view_on"):
        d = dates[field]
        if d and c is None:
            return f"{LABELS[field]} {d} but no {LABELS['connected_on']}"
        if d and c and d < c:
            return f"{LABELS[field]} {d} is before {LABELS['connected_on']} {c}"
    return None


def normalise_row(row: dict[str, str | None]) -> dict:
    """A registry row (header → text) → canonical values plus `problem_<field>` (None when the field is fine)."""
    values = map_headers(row)
    problems: dict[str, str | None] = dict.fromkeys(PROBLEM_FIELDS)
    prefecture, problems["prefecture_code"] = _prefecture(values["prefecture_code"])
    score_table = SCORE_TABLES.get(values["score_table"] or "")
    if values["score_table"] and score_table is None:
        problems["score_table"] = f"{LABELS['score_table']} {values['score_table']!r} is not 1 医科 or 3 歯科"
    ftype, problems["facility_type"] = _facility_type(values["facility_type"], score_table)
    number, problems["institution_number"] = _institution_number(values["institution_number"], prefecture,
                                                                 score_table, ftype)
    if number:
        if prefecture and prefecture != number[:2]:
            problems["prefecture_code"] = f"{LABELS['prefecture_code']} {prefecture} differs from 医療機関番号 {number}"
        if score_table and score_table != number[2]:
            problems["score_table"] = f"{LABELS['score_table']} {score_table} differs from 医療機関番号 {number}"
        # 歯科診療所 ⇔ 3, 診療所 ⇔ 1; a 病院 may hold either (a hospital's 歯科 has its own 点数表 3 number)
        if (ftype == "dental" and number[2] != "3") or (ftype == "clinic" and number[2] != "1"):
            problems["facility_type"] = (f"{LABELS['facility_type']} {ftype} does not match 点数表 {number[2]} of "
                                         f"{number} (歯科診療所 ⇔ 3, 診療所 ⇔ 1)")
    beds, problems["bed_count"] = _bed_count(values["bed_count"])
    if problems["bed_count"] is None and ftype == "hospital" and beds is None:
        problems["bed_count"] = f"{LABELS['bed_count']} is missing for a 病院 (needed for the 200/400-bed bands)"
    elif problems["bed_count"] is None and ftype == "hospital" and beds < HOSPITAL_MIN_BEDS:
        problems["bed_count"] = f"{LABELS['bed_count']} {beds} < {HOSPITAL_MIN_BEDS}: a 病院 has 20 beds or more"
    elif problems["bed_count"] is None and ftype in ("clinic", "dental") and beds is not None \
            and beds >= HOSPITAL_MIN_BEDS:
        problems["bed_count"] = f"{LABELS['bed_count']} {beds} ≥ {HOSPITAL_MIN_BEDS}: a 診療所 has 19 beds at most"
    dates = {}
    for field in DATE_FIELDS:
        dates[field] = parse_date(values[field])
        if values[field] is not None and dates[field] is None:
            problems[field] = f"{LABELS[field]} {values[field]!r} is not a date (YYYY-MM-DD, YYYY/M/D or 令和N年M月D日)"
    problems["onboarding_order"] = _onboarding_order(dates)
    return {
        "institution_number": number or values["institution_number"],
        "facility_name": values["facility_name"],
        "prefecture_code": prefecture or (number[:2] if number else None),
        "score_table": number[2] if number else score_table,
        "facility_type": ftype,
        "bed_count": beds,
        **{field: d.isoformat() if d else None for field, d in dates.items()},
        **{f"problem_{field}": text for field, text in problems.items()},
    }


#: SQL over (facility_type, bed_count): the 医療施設調査 bed bands of a hospital; null for clinics
BED_BAND_SQL = ("CASE WHEN facility_type <> 'hospital' OR bed_count IS NULL THEN NULL WHEN bed_count < 200 THEN '<200' "
                "WHEN bed_count < 400 THEN '200-399' ELSE '400+' END")


def normalise_json_rows(texts: list[str]) -> list[dict]:
    """raw.resource JSON text of registry rows → normalised rows (same order)."""
    return [normalise_row(orjson.loads(text)) for text in texts]

