"""Self-contained HTML for the audit report (no network requests: inline CSS and SVG), Japanese labels with
English beside. analyst_page shows only suppressed aggregates; cases_page is the security officer's case list."""

import html

import polars as pl

from pipelines.audit import rules as R
from pipelines.reports.audit import SMALL_CELL, SUPPRESSED, AuditReport, margin

FACILITY_TYPE = {"hospital": "病院 hospital", "clinic": "診療所 clinic", "dental": "歯科診療所 dental clinic",
                 "unknown": "不明 unknown"}
HTML_CASES_PER_RULE = 500  # a browser page stays usable; the CSV / XLSX hold every case
STYLE = """body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:4px 8px;font-size:13px;vertical-align:top}th{background:#f3f3f3}
td.n{text-align:right}.warn{background:#fdecea;border:1px solid #c0392b;padding:.6em}.ok{color:#1e7b34}
.restricted{background:#fff4d6;border:1px solid #d4a017;padding:.6em}footer{color:#666;font-size:12px;margin-top:2em}
code{font-size:12px}"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _bars(rows: list[tuple[str, int]], label: str, colour: str = "#2c6fbb", width: int = 640) -> str:
    if not rows:
        return "<p>表示できる件数なし (nothing to show above the small-cell threshold)</p>"
    top = max(n for _, n in rows) or 1
    bar_h, label_w = 18, 260
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{len(rows) * (bar_h + 6)}" '
              f'role="img" aria-label="{_e(label)}">')]
    for i, (name, n) in enumerate(rows):
        y = i * (bar_h + 6)
        w = max(1, int((width - label_w - 60) * n / top))
        parts.append(f'<text x="0" y="{y + 13}" font-size="12">{_e(name)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="{colour}"/>'
                     f'<text x="{label_w + w + 4}" y="{y + 13}" font-size="12">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(frame: pl.DataFrame, columns: list[tuple[str, str]], numeric: set[str] = frozenset()) -> str:
    head = "".join(f"<th>{_e(title)}</th>" for _, title in columns)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=n" if c in numeric else ""}>{_e(row[c])}</td>' for c, _ in columns) + "</tr>"
        for row in frame.iter_rows(named=True))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _rule_name(rule_id: str) -> str:
    r = R.RULES.get(rule_id)
    return f"{rule_id} {r.title_ja} ({r.title_en})" if r else rule_id


def _chain_banner(report: AuditReport) -> str:
    v = report.verdict
    if v.intact:
        return f'<p class="ok">閲覧ログ改ざん検知 Access-log hash chain: 正常 intact — {_e(v.message())}</p>'
    return (f'<p class="warn"><b>閲覧ログの改ざんを検知 The access log fails its hash chain</b>: {_e(v.message())}. '
            "Findings below are computed over the log as it is now; treat them as unreliable until resolved.</p>")


def _footer(report: AuditReport) -> str:
    items = " · ".join(f"{_e(k)}: {_e(v)}" for k, v in report.footer.items())
    return f"<footer>基準日 As of {_e(report.window.as_of)} · コード版 Code version {_e(report.footer['code_version'])}" \
           f"<br>{items}</footer>"


def _methods() -> str:
    rows = "".join(f"<tr><td><code>{_e(r.rule_id)}</code></td><td>{_e(r.title_ja)}<br>{_e(r.title_en)}</td>"
                   f"<td>{_e(r.meaning)}</td><td>{_e(r.review)}</td></tr>" for r in R.RULES.values())
    return f"""<h2>ルール Rules</h2><table><thead><tr><th>ID</th><th>ルール Rule</th><th>意味 Meaning</th>
<th>確認事項 Review</th></tr></thead><tbody>{rows}</tbody></table>
<h2>方法 Method</h2><ul>
<li>同意 Consent: the Consent in force at the instant of access (latest dateTime ≤ t, ties: larger id) must be an active
permit whose period, grantees and kinds cover the access (docs/consent.md). Emergency access (ETREAT) needs no consent:
it is always listed (A-EMERGENCY) and never reported as A-NO-CONSENT, A-AFTER-WITHDRAWAL or A-NO-CARE.</li>
<li>頑健統計 Robust statistics (A-EMERGENCY weight, A-VOLUME): modified z-score z = (x − median) / max(1.4826 × MAD,
floor), abnormal at z ≥ {R.ROBUST_Z}. Emergency share: facilities with ≥ {R.EMERGENCY_MIN_ACCESSES} accesses are
peers (≥ {R.EMERGENCY_MIN_PEERS} needed), a facility needs ≥ {R.EMERGENCY_MIN_COUNT} emergency accesses, floor
{R.EMERGENCY_SCALE_FLOOR:.0%}; weight {R.ELEVATED_WEIGHT} when abnormal. Volume: distinct patients per staff-day
(peers: all staff-days) and per facility-day (peers: same facility type), at least {R.VOLUME_MIN_PATIENTS} patients,
floor {R.VOLUME_SCALE_FLOOR:g}. Peers are taken within the report window.</li>
<li>診療関係 Care relationship (A-NO-CARE): any accepted record the facility sent for the patient, or a referral
addressed to it, up to the end of the as-of day.</li>
<li>小集団秘匿 Small-cell rule: a cell with fewer than {SMALL_CELL} distinct patients shows "{SUPPRESSED}" and is left out
of every total and chart; totals are sums of the shown cells only, so suppressed counts cannot be recovered by
subtraction.</li></ul>"""


def analyst_page(report: AuditReport, summary: pl.DataFrame) -> str:
    cube = report.cube
    by_rule = margin(cube, ["rule_id"]).with_columns(rule=pl.col("rule_id").map_elements(_rule_name, pl.String))
    by_month = margin(cube, ["month"])
    by_pref = margin(cube, ["prefecture_code", "prefecture_name"])
    by_type = margin(cube, ["facility_type"]).with_columns(
        facility_type=pl.col("facility_type").replace(FACILITY_TYPE))
    chart_rule = _bars([(r["rule"][:34], r["findings_shown"]) for r in by_rule.iter_rows(named=True)
                        if r["findings_shown"]], "findings by rule")
    chart_month = _bars([(r["month"], r["findings_shown"]) for r in by_month.iter_rows(named=True)
                         if r["findings_shown"]], "findings by month", "#8e44ad")
    margin_cols = [("findings_shown", "件数(表示分) Findings shown"), ("cells_suppressed", "秘匿セル Cells <10")]
    numeric = {"findings_shown", "cells_suppressed", "findings", "accesses", "patients"}
    shown = summary.filter(~pl.col("suppressed"))
    return f"""<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>Karte 監査レポート Audit report</title><style>{STYLE}</style></head>
<body><h1>監査レポート <small>Audit report — who saw what, and was it allowed</small></h1>
<p>対象期間 Window: {_e(report.window.label())}. 閲覧件数 Accesses audited: {report.accesses}.
For analysts: counts of fewer than {SMALL_CELL} patients are suppressed. The case list is a separate,
restricted file (audit_cases.html) for the security officer.</p>
{_chain_banner(report)}
<h2>ルール別 By rule</h2>{chart_rule}
{_table(by_rule, [("rule", "ルール Rule"), *margin_cols], numeric)}
<h2>月別 By month (JST)</h2>{chart_month}
{_table(by_month, [("month", "月 Month"), *margin_cols], numeric)}
<h2>都道府県別 By prefecture (of the viewing facility)</h2>
{_table(by_pref, [("prefecture_code", "コード Code"), ("prefecture_name", "都道府県 Prefecture"), *margin_cols], numeric)}
<h2>施設種別 By facility type</h2>
{_table(by_type, [("facility_type", "種別 Type"), *margin_cols], numeric)}
<h2>明細 Cells shown (month × prefecture × facility type × rule)</h2>
<p>{shown.height} of {summary.height} cells shown; the full cube with "{SUPPRESSED}" cells is audit_summary.csv.</p>
{_table(shown, [("month", "月 Month"), ("prefecture_name", "都道府県 Prefecture"), ("facility_type", "種別 Type"),
                ("rule_id", "ルール Rule"), ("findings", "件数 Findings"), ("accesses", "閲覧 Accesses"),
                ("patients", "患者数 Patients")], numeric)}
{_methods()}
{_footer(report)}</body></html>"""


def cases_page(report: AuditReport) -> str:
    cases = report.cases
    counts = cases.group_by("rule_id").agg(pl.len().alias("n"), pl.col("weight").max().alias("max_weight")).sort(
        "rule_id")
    sections = []
    for rule_id in R.RULES:
        group = cases.filter(pl.col("rule_id") == rule_id)
        if group.is_empty():
            continue
        note = (f"<p>The {HTML_CASES_PER_RULE} heaviest and earliest shown; all {group.height} are in "
                "audit_cases.csv / .xlsx.</p>" if group.height > HTML_CASES_PER_RULE else "")
        total, group = group.height, group.head(HTML_CASES_PER_RULE)
        sections.append(f"<h3>{_e(_rule_name(rule_id))} — {total}</h3>{note}" + _table(group, [
            ("weight", "重み Weight"), ("recorded_jst", "日時 When (JST)"), ("viewer", "医療機関番号 Facility"),
            ("facility_name", "医療機関名 Name"), ("staff_id", "職員 Staff"), ("staff_role", "職種 Role"),
            ("patient_key", "患者(仮名) Patient (pseudonym)"), ("purpose", "目的 Purpose"), ("kinds", "情報 Kinds"),
            ("explanation", "説明 Explanation"), ("evidence", "根拠 Evidence"), ("access_id", "閲覧ID Access")],
            {"weight"}))
    summary = _table(counts.with_columns(rule=pl.col("rule_id").map_elements(_rule_name, pl.String)),
                     [("rule", "ルール Rule"), ("n", "件数 Findings"), ("max_weight", "最大重み Max weight")],
                     {"n", "max_weight"})
    return f"""<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>Karte 監査 事例一覧 Audit case list</title><style>{STYLE}</style>
</head><body><h1>監査 事例一覧 <small>Audit case list</small></h1>
<p class="restricted"><b>取扱注意 Restricted</b>: for the security officer. Patient keys are pseudonyms (HMAC); do not
forward — analysts use audit.html.</p>
<p>対象期間 Window: {_e(report.window.label())}. 閲覧件数 Accesses audited: {report.accesses}; 所見 findings:
{cases.height}. Heaviest first within each rule.</p>
{_chain_banner(report)}
{summary}
{''.join(sections) or '<p>所見なし No findings.</p>'}
{_methods()}
{_footer(report)}</body></html>"""
