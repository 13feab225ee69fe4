"""The 特定健診 report's files: a self-contained HTML page (inline CSS and SVG, no network requests), one CSV
per table, and an XLSX workbook (xlsxwriter; one sheet per table, Japanese headers)."""

import html
from pathlib import Path

import polars as pl
import xlsxwriter

from pipelines.reports.checkups import ALL, RATES, CheckupReport

LABELS = {
    "prefecture_code": "都道府県コード", "prefecture_name_ja": "都道府県", "prefecture_name_en": "Prefecture",
    "sex": "性別", "age_band": "年齢階級", "examinees": "受診者数", "metabo_judged": "メタボ判定者数",
    "metabo_positive": "メタボ該当者数", "metabo_reserve": "メタボ予備群該当者数", "hba1c_measured": "HbA1c測定者数",
    "hba1c_high": "HbA1c 6.5%以上の者", "bp_measured": "血圧測定者数", "bp_high": "血圧140/90以上の者",
    "metabo_rate": "メタボ該当率", "metabo_reserve_rate": "メタボ予備群率", "hba1c_high_rate": "HbA1c 6.5%以上の割合",
    "bp_high_rate": "血圧140/90以上の割合", "eligible": "対象者数（ウェアハウス既知の40–74歳）",
    "participation_rate": "受診率（参考）", "suppressed": "秘匿あり（10人未満）",
}
ENGLISH = {
    "examinees": "examinees", "metabo_rate": "metabolic syndrome", "metabo_reserve_rate": "pre-metabolic syndrome",
    "hba1c_high_rate": "HbA1c ≥ 6.5 %", "bp_high_rate": "BP ≥ 140/90", "participation_rate": "participation",
    "eligible": "eligible (known to the warehouse)",
}
SEX_JA = {"male": "男性", "female": "女性", ALL: "計"}
SHEETS = {"results": "健診結果", "participation": "受診状況", "inputs": "定義と入力"}
RATE_COLUMNS = {**RATES, "participation_rate": ("examinees", "eligible")}
DEFINITIONS = [
    ("対象 Who", ("特定健診（プログラム010）の受診者のうち年度末年齢40–74歳。年度内の最新の健診1件 / 特定健診 examinees "
                 "aged 40–74 at the end of the fiscal year; the latest checkup of the year per person")),
    ("都道府県 Prefecture", ("ウェアハウスの患者住所の都道府県。住所不明の者は健診機関の所在都道府県 / the person's address; "
                            "the examining institution's prefecture when unknown")),
    ("メタボ Metabolic syndrome", ("メタボリックシンドローム判定 1 基準該当 / 2 予備群該当、分母は判定1–3の者 / judgement 1 or 2 "
                                  "among those judged 1–3")),
    ("HbA1c", "HbA1c (NGSP) 6.5%以上、分母は測定者 / among those with a value"),
    ("血圧 Blood pressure", ("収縮期140以上または拡張期90以上 (mmHg)、1回目と2回目の平均 / systolic ≥ 140 or diastolic ≥ 90, "
                           "mean of the 1st and 2nd readings")),
    ("受診率 Participation", ("ウェアハウスが知る40–74歳の被保険者に対する受診者の割合（参考値）/ examinees over insured persons "
                             "aged 40–74 known to the warehouse (a reference figure, not an insurer's roster)")),
    ("秘匿 Small cells", ("10人未満の人数と、それから計算した割合は表示しない / counts below 10 people and rates computed "
                         "from them are suppressed")),
]


def _header(column: str) -> str:
    ja = LABELS.get(column, column)
    return f"{ja} {ENGLISH[column]}" if column in ENGLISH else ja


def _cell(row: dict, column: str) -> str:
    value = row[column]
    if column in RATE_COLUMNS:
        num, den = RATE_COLUMNS[column]
        if value is None:
            return "—" if row.get(num) is None or row.get(den) is None else ""
        return f"{value * 100:.1f}%"
    if value is None:
        return "<10" if column != "age_band" else ""
    if column == "sex":
        return SEX_JA.get(value, value)
    if column == "age_band":
        return "計" if value == ALL else f"{value}歳"
    if isinstance(value, bool):
        return "○" if value else ""
    return str(value)


def _table(frame: pl.DataFrame, columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(_header(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row, c))}</td>" for c in columns) + "</tr>"
                   for row in frame.iter_rows(named=True))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def grouped_bars(title: str, categories: list[str], series: dict[str, list[float | None]], width: int = 620) -> str:
    """Vertical grouped bars (percentages) as inline SVG; a suppressed value is drawn as a '<10' mark."""
    colors = ["#2c7fb8", "#d95f0e", "#31a354", "#756bb1"]
    height, top, bottom, left = 240, 30, 40, 40
    plot_h = height - top - bottom
    values = [v for vs in series.values() for v in vs if v is not None]
    peak = max(values + [0.01])
    group_w = (width - left - 10) / max(len(categories), 1)
    bar_w = group_w * 0.8 / max(len(series), 1)
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(title)}"><text x="{left}" y="16" font-size="13" font-weight="bold">'
             f'{html.escape(title)}</text>'),
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#999"/>']
    for i, category in enumerate(categories):
        x0 = left + i * group_w + group_w * 0.1
        parts.append(f'<text x="{x0 + group_w * 0.4:.1f}" y="{top + plot_h + 16}" font-size="11" '
                     f'text-anchor="middle">{html.escape(category)}</text>')
        for j, (_, vs) in enumerate(series.items()):
            x = x0 + j * bar_w
            v = vs[i]
            if v is None:
                parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - 4}" font-size="9" '
                             f'text-anchor="middle" fill="#888">&lt;10</text>')
                continue
            h = plot_h * v / peak
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" '
                         f'fill="{colors[j % len(colors)]}"><title>{v * 100:.1f}%</title></rect>'
                         f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - h - 3:.1f}" font-size="9" '
                         f'text-anchor="middle">{v * 100:.0f}</text>')
    for j, name in enumerate(series):
        parts.append(f'<rect x="{left + j * 120}" y="{height - 14}" width="10" height="10" '
                     f'fill="{colors[j % len(colors)]}"/><text x="{left + j * 120 + 14}" y="{height - 5}" '
                     f'font-size="11">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _chart_or_note(title: str, categories: list[str], series: dict[str, list[float | None]]) -> str:
    if not any(v is not None for vs in series.values() for v in vs):
        return (f"<p><b>{html.escape(title)}</b>: すべての区分が10人未満のため表示しません / every cell is below "
                "10 people: nothing to show.</p>")
    return grouped_bars(title, categories, series)


def _summary_chart(results: pl.DataFrame) -> str:
    """The four measures nationally, by sex and for everyone: the figures least often suppressed."""
    national = results.filter(pl.col("prefecture_code") == "00", pl.col("age_band") == ALL)
    measures = {"metabo_rate": "メタボ該当", "metabo_reserve_rate": "予備群", "hba1c_high_rate": "HbA1c≥6.5",
                "bp_high_rate": "血圧≥140/90"}
    series = {}
    for sex, label in (("male", "男性 Male"), ("female", "女性 Female"), (ALL, "計 All")):
        row = national.filter(pl.col("sex") == sex)
        series[label] = [row[m][0] if row.height else None for m in measures]
    return _chart_or_note("全国 主な指標 National summary (%)", list(measures.values()), series)


def _national_chart(results: pl.DataFrame, rate: str, title: str) -> str:
    national = results.filter(pl.col("prefecture_code") == "00", pl.col("age_band") != ALL)
    bands = sorted(national["age_band"].unique().to_list())
    series = {}
    for sex, label in (("male", "男性 Male"), ("female", "女性 Female")):
        by_band = dict(national.filter(pl.col("sex") == sex).select("age_band", rate).iter_rows())
        series[label] = [by_band.get(b) for b in bands]
    return _chart_or_note(title, [f"{b}歳" for b in bands], series) if bands else ""


RESULT_COLUMNS = ["prefecture_code", "prefecture_name_ja", "sex", "age_band", "examinees", "metabo_rate",
                  "metabo_reserve_rate", "hba1c_high_rate", "bp_high_rate"]


def render_html(report: CheckupReport) -> str:
    r, p = report.results, report.participation
    national = r.filter(pl.col("prefecture_code") == "00").sort("sex", "age_band")
    prefectures = r.filter(pl.col("prefecture_code") != "00", pl.col("sex") == ALL, pl.col("age_band") == ALL).join(
        p.filter(pl.col("sex") == ALL, pl.col("age_band") == ALL).select("prefecture_code", "eligible",
                                                                            "participation_rate"),
        on="prefecture_code", how="left")
    charts = _summary_chart(r) + "".join(_national_chart(r, rate, title) for rate, title in (
        ("metabo_rate", "メタボ該当率 Metabolic syndrome (%)"),
        ("metabo_reserve_rate", "メタボ予備群率 Pre-metabolic syndrome (%)"),
        ("hba1c_high_rate", "HbA1c 6.5%以上 HbA1c ≥ 6.5 % (%)"),
        ("bp_high_rate", "血圧140/90以上 Blood pressure ≥ 140/90 (%)")))
    definitions = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in DEFINITIONS)
    inputs = "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in report.inputs.items())
    detail = r.filter(pl.col("prefecture_code") != "00", pl.col("sex") != ALL, pl.col("age_band") != ALL)
    return f"""<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8">
<title>特定健診 結果レポート Specific health checkup report {report.fiscal_year}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}
th,td{{border:1px solid #ccc;padding:3px 7px;font-size:12px;text-align:right}}th{{background:#f3f3f3}}
td:nth-child(-n+4){{text-align:left}}dt{{font-weight:bold;margin-top:.4em}}svg{{margin:.5em 1em .5em 0}}
footer{{color:#666;font-size:12px;margin-top:2em}}</style></head><body>
<h1>特定健診 結果レポート <small>Specific health checkups (特定健康診査) — results</small></h1>
<p>{report.fiscal_year}年度 (fiscal year {report.fiscal_year}), 基準日 as of {report.as_of}.
10人未満の人数と、それから計算した割合は「&lt;10」「—」と表示しています / counts below 10 people and rates computed from
them are suppressed.</p>
<h2>全国 年齢階級別 National, by age band</h2>{charts}
{_table(national, RESULT_COLUMNS[2:])}
<h2>都道府県別 By prefecture</h2>
{_table(prefectures, ["prefecture_code", "prefecture_name_ja", "examinees", "eligible", "participation_rate",
                      "metabo_rate", "metabo_reserve_rate", "hba1c_high_rate", "bp_high_rate"])}
<details><summary>都道府県 × 性別 × 年齢階級 By prefecture, sex and age band</summary>
{_table(detail, RESULT_COLUMNS)}</details>
<h2>定義 Definitions</h2><dl>{definitions}</dl>
<footer><ul>{inputs}</ul></footer></body></html>"""


def _xlsx_value(row: dict, column: str):
    value = row[column]
    if value is None:
        if column in RATE_COLUMNS:
            num, den = RATE_COLUMNS[column]
            return "—" if row.get(num) is None or row.get(den) is None else None
        return "<10" if column not in ("prefecture_name_ja", "prefecture_name_en") else None
    if column == "sex":
        return SEX_JA.get(value, value)
    return value


def write_xlsx(report: CheckupReport, path: Path) -> Path:
    with xlsxwriter.Workbook(str(path)) as book:
        bold = book.add_format({"bold": True, "bg_color": "#F3F3F3", "text_wrap": True, "valign": "top"})
        percent = book.add_format({"num_format": "0.0%"})
        for key in ("results", "participation"):
            frame: pl.DataFrame = getattr(report, key)
            sheet = book.add_worksheet(SHEETS[key])
            sheet.freeze_panes(1, 4)
            for col, name in enumerate(frame.columns):
                sheet.write(0, col, LABELS.get(name, name), bold)
                sheet.set_column(col, col, 14 if name not in ("prefecture_name_en",) else 12)
            for r, row in enumerate(frame.iter_rows(named=True), start=1):
                for col, name in enumerate(frame.columns):
                    value = _xlsx_value(row, name)
                    if name in RATE_COLUMNS and isinstance(value, float):
                        sheet.write_number(r, col, value, percent)
                    elif value is not None:
                        sheet.write(r, col, value)
            sheet.autofilter(0, 0, frame.height, frame.width - 1)
        sheet = book.add_worksheet(SHEETS["inputs"])
        sheet.set_column(0, 0, 28)
        sheet.set_column(1, 1, 110)
        rows = [("項目", "内容"), *DEFINITIONS, *[(k, str(v)) for k, v in report.inputs.items()]]
        for r, (k, v) in enumerate(rows):
            sheet.write(r, 0, k, bold if r == 0 else None)
            sheet.write(r, 1, v, bold if r == 0 else None)
    return path


def write_outputs(report: CheckupReport, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"checkups_{report.fiscal_year}"
    paths = [out_dir / f"{stem}_results.csv", out_dir / f"{stem}_participation.csv"]
    report.results.write_csv(paths[0])
    report.participation.write_csv(paths[1])
    paths.append(write_xlsx(report, out_dir / f"{stem}.xlsx"))
    page = out_dir / f"{stem}.html"
    page.write_text(render_html(report), encoding="utf-8")
    paths.append(page)
    return paths
