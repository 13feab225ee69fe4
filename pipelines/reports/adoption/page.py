"""The adoption report as one self-contained HTML page: inline CSS and SVG, no script, no network request.
Japanese labels with English beside; every rate shows its numerator and denominator; the footer names the
as-of date, the inputs and the code version."""

from datetime import date

import polars as pl

from pipelines.reports.adoption import survey, trajectory
from pipelines.reports.adoption.charts import (
    Marker,
    Series,
    decimal_year,
    esc,
    hbar_chart,
    legend,
    line_chart,
)
from pipelines.reports.adoption.labels import (
    CATEGORY_JA,
    SEGMENT_EN,
    SEGMENT_JA,
    SEGMENTS,
    SIX_KINDS,
    THREE_DOCUMENTS,
)
from pipelines.reports.adoption.report import AdoptionReport
from pipelines.reports.adoption.tilemap import tile_map

STATUS_JA = {"reached": "達成", "on track": "順調", "at risk": "要注意", "uncertain": "不確実", "off track": "遅れ",
             "not estimable": "推定不能", "no registered facilities": "登録なし"}
_CSS = """
body{font-family:"Noto Sans CJK JP","Hiragino Sans","Yu Gothic",Meiryo,sans-serif;margin:24px auto;max-width:1100px;
color:#222;line-height:1.5;padding:0 16px}
h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;border-bottom:2px solid #08519c;padding-bottom:2px;margin-top:36px}
h3{font-size:15px;margin-bottom:4px}small,.en{color:#555;font-weight:normal}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;
vertical-align:top}th{background:#f3f3f3;text-align:left}td.num{text-align:right;white-space:nowrap}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ccc;border-radius:6px;padding:8px 14px;min-width:180px}
.card b{font-size:22px;display:block}.note{font-size:12px;color:#555}.status-reached{color:#238b45;font-weight:bold}
.status-on-track{color:#238b45}.status-off-track{color:#b30000;font-weight:bold}.status-uncertain,.status-at-risk{color:#b36b00}
svg.chart{display:block;margin:8px 0;max-width:100%;height:auto}svg .chart-title{font-size:13px;font-weight:bold}
svg .tick{font-size:11px;fill:#444}svg .grid{stroke:#e4e4e4}svg .target{stroke:#b30000;stroke-dasharray:4 3}
svg .target-label{fill:#b30000}svg .marker{stroke:#777;stroke-dasharray:2 2}svg .poi{fill:#b30000}
svg .tile-name{font-size:12px}svg .tile-value{font-size:11px}
footer{margin-top:40px;font-size:12px;color:#555;border-top:1px solid #ccc;padding-top:8px}
details summary{cursor:pointer;color:#08519c}.wide{overflow-x:auto;max-width:100%}
"""


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} %"


def _ratio(numerator: int | None, denominator: int | None) -> str:
    """'65.0 % (13 / 20)' — the rate with what it divides (small rates keep three significant digits)."""
    if not denominator:
        return f"– ({numerator or 0} / {denominator or 0})"
    pct = numerator * 100 / denominator
    shown = f"{pct:.3g}" if 0 < pct < 0.1 else f"{pct:.1f}"
    return f"{shown} % ({numerator:,} / {denominator:,})"


def _ratio_cell(numerator: int | None, denominator: int | None) -> str:
    """The rate on one line, what it divides on the next (keeps wide national counts inside the page)."""
    if not denominator:
        return f"–<br><span class=note>{numerator or 0:,} / {denominator or 0:,}</span>"
    pct = numerator * 100 / denominator
    shown = f"{pct:.3g}" if 0 < pct < 0.1 else f"{pct:.1f}"
    return f"{shown} %<br><span class=note>{numerator:,} / {denominator:,}</span>"


def _date(value: date | None) -> str:
    return "–" if value is None else value.isoformat()


def _status(status: str | None) -> str:
    if status is None:
        return "–"
    return (f'<span class="status-{status.replace(" ", "-")}">{esc(STATUS_JA.get(status, status))} '
            f'<span class="en">{esc(status)}</span></span>')


def _table(head: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    """Cells are HTML already (escape with esc() when building them)."""
    header = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f'<td{" class=num" if j in numeric else ""}>{c}</td>' for j, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f'<div class="wide"><table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></div>'


def _latest(cells: pl.DataFrame) -> pl.DataFrame:
    return cells.filter(pl.col("month") == cells["month"].max()) if cells.height else cells


def _summary(report: AdoptionReport) -> str:
    national = report.tables["adoption_trajectory"].filter(pl.col("segment") == "all").row(0, named=True)
    latest = _latest(report.cells).filter(pl.col("prefecture_code") == "00", pl.col("segment") == "all")
    cell = latest.row(0, named=True) if latest.height else {}
    cards = [
        ("接続済", "Connected", _ratio(national["connected"], national["registered"]), "登録施設に占める割合 of registered"),
        ("送信中", "Sharing (30 d)", _ratio(cell.get("sharing", 0), cell.get("connected", 0)), "接続済のうち of connected"),
        ("閲覧中", "Viewing (30 d)", _ratio(cell.get("viewing", 0), cell.get("connected", 0)), "接続済のうち of connected"),
        ("必要ペース", "Required pace", f"{national['required_per_month'] or 0:.1f} 施設/月",
         f"{national['facilities_short'] or 0:,} facilities in {national['months_remaining'] or 0:.0f} months"),
        ("実績ペース", "Observed pace", "–" if national["observed_per_month"] is None
         else f"{national['observed_per_month']:.1f} 施設/月", f"last {trajectory.PACE_WINDOW_MONTHS} months"),
        ("到達予測", "Projected", _date(national["projected_reach_date"]),
         f"95 %: {_date(national['projected_reach_low'])} – {_date(national['projected_reach_high'])}"),
    ]
    html_cards = "".join(f'<div class="card">{ja} <span class="en">{en}</span><b>{esc(value)}</b>'
                         f'<span class="note">{esc(note)}</span></div>' for ja, en, value, note in cards)
    return (f'<div class="cards">{html_cards}</div><p>判定 Status: {_status(national["status"])} — '
            f'目標 target {report.target.level:.0%} by {report.target.by.isoformat()}.</p>')


def _national_chart(report: AdoptionReport) -> str:
    series = report.cells.filter(pl.col("prefecture_code") == "00", pl.col("segment") == "all").sort("snapshot_date")
    if series.is_empty():
        return "<p>No data yet.</p>"
    observed = [(decimal_year(r["snapshot_date"]), r["connected"] * 100 / r["registered"] if r["registered"] else 0,
                 f"{r['month']}: {_ratio(r['connected'], r['registered'])}") for r in series.iter_rows(named=True)]
    sharing = [(decimal_year(r["snapshot_date"]), r["sharing"] * 100 / r["registered"] if r["registered"] else 0,
                f"{r['month']}: sharing {r['sharing']} of {r['registered']} registered")
               for r in series.iter_rows(named=True)]
    curve = trajectory.curve_points(series, report.target)
    lines = [Series("接続済 connected (observed)", observed, "#08519c"),
             Series("送信中 sharing (of registered)", sharing, "#d95f02")]
    if curve:
        lines.append(Series("ロジスティック予測 logistic projection (95 %)",
                            [(decimal_year(d), f * 100, f"{d}: {f * 100:.1f} %") for d, f, _, _ in curve],
                            "#6a51a3", dashed=True, band=[(decimal_year(d), lo * 100, hi * 100) for d, _, lo, hi in curve],
                            markers=False))
    last = series.row(-1, named=True)
    needed = Series("必要な軌道 required path", [
        (decimal_year(report.as_of), last["connected"] * 100 / last["registered"] if last["registered"] else 0, ""),
        (decimal_year(report.target.by), report.target.level * 100, "")], "#b30000", dashed=True, markers=False)
    lines.append(needed)
    x0 = decimal_year(series["snapshot_date"][0])
    return line_chart(lines, (x0, decimal_year(report.target.by) + 0.1),
                      "全国 接続率の推移と見通し National connected share and projection (% of registered facilities)",
                      hlines=[(report.target.level * 100, f"目標 target {report.target.level:.0%}")],
                      vlines=[Marker(decimal_year(report.as_of), f"基準日 as of {report.as_of}")],
                      points_of_interest=[(decimal_year(report.target.by), report.target.level * 100,
                                           f"目標 target {report.target.level:.0%} by {report.target.by}")])


def _segments(report: AdoptionReport) -> str:
    traj = {r["segment"]: r for r in report.tables["adoption_trajectory"].iter_rows(named=True)}
    latest = {r["segment"]: r for r in _latest(report.cells).filter(pl.col("prefecture_code") == "00")
              .iter_rows(named=True)}
    rows, bars = [], []
    for code, ja, en in SEGMENTS:
        t, c = traj.get(code), latest.get(code)
        if not t or not t["registered"]:
            continue
        bars.append((f"{ja} {en}", t["rate_connected_pct"], _ratio(t["connected"], t["registered"])))
        rows.append([f"{esc(ja)}<br><span class=en>{esc(en)}</span>", _ratio_cell(t["connected"], t["registered"]),
                     _ratio_cell(c["sharing"], c["connected"]), _ratio_cell(c["viewing"], c["connected"]),
                     _ratio_cell(c["kinds_sent"], c["connected"] * len(SIX_KINDS)),
                     _ratio_cell(c["documents_sent"], c["connected"] * len(THREE_DOCUMENTS)),
                     _ratio_cell(c["records_passed"], c["records_received"]),
                     f"{t['required_per_month'] or 0:.2f}", "–" if t["observed_per_month"] is None
                     else f"{t['observed_per_month']:.2f}",
                     (f"{_date(t['projected_reach_date'])}<br><span class=note>{_date(t['projected_reach_low'])} – "
                     f"{_date(t['projected_reach_high'])}</span>"), _status(t["status"])])
    head = ["区分 Segment", "接続済 Connected<br><span class=note>/ registered</span>",
            "送信中 Sharing<br><span class=note>/ connected</span>", "閲覧中 Viewing<br><span class=note>/ connected</span>",
            "6情報 6 kinds<br><span class=note>/ connected × 6</span>",
            "3文書 3 documents<br><span class=note>/ connected × 3</span>",
            "受理率 Pass rate<br><span class=note>records passed / received, this month</span>",
            "必要 Required<br><span class=note>facilities / month</span>",
            "実績 Observed<br><span class=note>facilities / month</span>",
            "到達予測 Projected<br><span class=note>95 % interval</span>", "判定 Status"]
    return (hbar_chart(bars, "区分別 接続率 Connected share by segment", report.target.level * 100)
            + _table(head, rows, numeric=set(range(1, 9))))


def _prefectures(report: AdoptionReport) -> str:
    gap = report.tables["adoption_prefecture_gap"]
    names = dict(zip(gap["prefecture_code"], gap["prefecture_name_ja"]))
    values = {r["prefecture_code"]: (r["rate_connected_pct"], _ratio(r["connected"], r["registered"]))
              for r in gap.iter_rows(named=True) if r["registered"]}
    tiles = tile_map(values, names, report.target.level * 100,
                     "都道府県別 接続率 Connected share by prefecture (tile grid)")
    rows = [[str(r["rank_by_gap"] or "–"), (f"{esc(r['prefecture_name_ja'])} <span class=en>{esc(r['prefecture_name_en'])}"
             "</span>"), _ratio_cell(r["connected"], r["registered"]),
             "–" if r["gap_pp"] is None else f"{r['gap_pp']:.1f}", f"{r['facilities_short'] or 0:,}",
             "–" if r["required_per_month"] is None else f"{r['required_per_month']:.2f}",
             "–" if r["observed_per_month"] is None else f"{r['observed_per_month']:.2f}",
             _date(r["projected_reach_date"]), _status(r["status"])] for r in gap.iter_rows(named=True)]
    head = ["順位 Rank", "都道府県 Prefecture", "接続済 Connected / registered", "目標との差 Gap (points)",
            "不足 Facilities short", "必要 Required / month", "実績 Observed / month", "到達予測 Projected",
            "判定 Status"]
    return (tiles + legend(report.target.level * 100)
            + '<p class="note">タイルグリッド地図: 各都道府県を同じ大きさのタイルで概略の位置に置いた図で、面積や境界は正確ではありません。'
              " A tile-grid map: every prefecture is one equal tile at its approximate place — not to scale, "
              "neighbours only roughly kept.</p>"
            + "<h3>目標との差の大きい順 Ranked by gap to the target</h3>"
            + _table(head, rows, numeric={0, 2, 3, 4, 5, 6}))


def _coverage(report: AdoptionReport) -> str:
    latest = {r["segment"]: r for r in _latest(report.cells).filter(pl.col("prefecture_code") == "00")
              .iter_rows(named=True)}
    kinds = (*SIX_KINDS, *THREE_DOCUMENTS)
    rows = []
    for code, ja, en in SEGMENTS:
        c = latest.get(code)
        if not c or not c["registered"]:
            continue
        rows.append([f"{esc(ja)} <span class=en>{esc(en)}</span>"]
                    + [_ratio_cell(c[f"sent:{k}"], c["connected"]) for k in kinds])
    head = ["区分 Segment"] + [f"{esc(CATEGORY_JA[k])}<br><span class=note>{esc(k)}</span>" for k in kinds]
    return ('<p>接続済施設のうち、その情報を一度でも送信し受理された施設の割合 (基準日まで)。 Share of connected facilities '
            "that have ever sent the kind of information and had it accepted, by the as-of date.</p>"
            + _table(head, rows, numeric=set(range(1, len(kinds) + 1))))


def _quality(report: AdoptionReport) -> str:
    series = report.cells.filter(pl.col("prefecture_code") == "00", pl.col("segment") == "all").sort("snapshot_date")
    points = [(decimal_year(r["snapshot_date"]), r["records_passed"] * 100 / r["records_received"],
               f"{r['month']}: {_ratio(r['records_passed'], r['records_received'])}")
              for r in series.iter_rows(named=True) if r["records_received"]]
    if not points:
        return "<p>No records received yet.</p>"
    x0, x1 = points[0][0], max(points[-1][0], points[0][0] + 0.5)
    return line_chart([Series("受理率 pass rate", points, "#1b9e77")], (x0, x1),
                      "全国 データ受理率 National data-quality pass rate (records passed / received, by month)")


def _survey(report: AdoptionReport) -> str:
    rates = report.tables["ehr_survey_rates"]
    projection = report.tables["ehr_survey_projection"]
    lines = []
    colours = ["#08519c", "#d95f02", "#7570b3", "#1b9e77", "#e7298a"]
    end = decimal_year(report.target.by)
    for i, ((segment,), group) in enumerate(report.survey_frame.sort("survey_year").group_by("segment",
                                                                                              maintain_order=True)):
        points = group.filter(pl.col("rate_pct").is_not_null())
        xs = [decimal_year(date.fromisoformat(d)) for d in points["as_of"]]
        colour = colours[i % len(colours)]
        label = group["segment_ja"][0]
        lines.append(Series(label, [(x, r, f"{label} {y}: {r} %") for x, r, y in
                                    zip(xs, points["rate_pct"], points["survey_year"])], colour))
        fit = survey.trend(xs, points["rate_pct"].to_list())
        if fit:
            curve = survey.curve(fit, xs[-1], end)
            lines.append(Series(f"{label} 趨勢", [(x, r, "") for x, r, _, _ in curve], colour, dashed=True,
                                band=[(x, lo, hi) for x, _, lo, hi in curve], markers=False, in_legend=False))
    chart = line_chart(lines, (2007.5, end + 0.2), "電子カルテ普及率と2030年への趨勢 EHR adoption (医療施設調査) and its "
                       "trend to the target date", hlines=[(report.target.level * 100, f"目標 {report.target.level:.0%}")])
    rate_rows = [[str(r["survey_year"]), esc(r["segment_ja"]), _pct(r["published_rate_pct"]),
                  "–" if r["computed_rate_pct"] is None else f"{_pct(r['computed_rate_pct'])} "
                  f"({r['numerator']:,} / {r['denominator']:,})",
                  {True: "✓", False: "✗", None: "–"}[r["reproduces_published"]], esc(r["rate_basis"])]
                 for r in rates.sort("segment", "survey_year").iter_rows(named=True)]
    proj_rows = [[esc(r["segment_ja"]), _pct(r["latest_rate_pct"]),
                  (f"{_pct(r['projected_rate_pct'])}<br><span class=note>{_pct(r['projected_low_pct'])} – "
                  f"{_pct(r['projected_high_pct'])}</span>"),
                  (f"{r['reach_year'] or '> 2100'}<br><span class=note>{r['reach_year_low'] or '–'} – "
                  f"{r['reach_year_high'] or '> 2100'}</span>"), _status(r["status"])]
                 for r in projection.iter_rows(named=True)]
    return (chart + "<p>破線と帯は趨勢と95 %予測区間 (dashed: the trend and its 95 % prediction band). "
            "電子カルテがなければ接続できない: the survey's trend bounds the connection rollout. "
            f"{esc(survey.MODEL)}. 2011 excludes parts of 宮城県 and all of 福島県.</p>"
            + f"<h3>{report.target.by.year}年の見通し Trend at the target date</h3>"
            + _table(["区分 Segment", "最新 Latest (2023)", f"予測 Projected {report.target.by} (95 %)",
                      f"{report.target.level:.0%} 到達年 Year reaching (95 %)", "判定 Status"], proj_rows,
                     numeric={1, 2, 3})
            + "<details><summary>公表値と再計算 Published rates and their recomputation</summary>"
            + _table(["年 Year", "区分 Segment", "公表 Published", "再計算 Recomputed (adopters / facilities)",
                      "一致 Match", "根拠 Basis"], rate_rows, numeric={0, 2, 3}) + "</details>")


def _reference(report: AdoptionReport) -> str:
    frame = report.tables["adoption_reference_rates"].filter(pl.col("prefecture_code") == "00")
    rows = [[esc(r["facility_type"]), esc(r["measure"]), _ratio_cell(r["numerator"], r["denominator"]),
             f"{esc(r['denominator_as_of'])}", esc(r["denominator_source"])] for r in frame.iter_rows(named=True)]
    return ("<p>登録台帳 (registry) と接続済施設を、全国の施設数 (医療施設調査) で割った割合。 The registry and the "
            "connected facilities divided by every facility in Japan; per prefecture in adoption_reference_rates.</p>"
            + _table(["種別 Type", "指標 Measure", "割合 Rate (numerator / denominator)", "分母の時点 Denominator as of",
                      "分母の出典 Denominator source"], rows, numeric={2}))


def _notes(report: AdoptionReport) -> str:
    items = [
        ("分母 Denominators: 接続済・申請済は登録施設 (core.facility)、送信中・閲覧中・カバー率は接続済施設、受理率はその月に受信した"
        "レコード。 connected/applied divide by registered facilities; sharing, viewing and coverage by connected "
        "facilities; the pass rate by the records received in the month. Every table carries its numerator, "
        "denominator and denominator basis."),
        (f"送信中 Sharing: an accepted bundle dated within the {report.inputs['trailing_window_days']} days ending on the "
        "month's last day (Bundle.timestamp); 閲覧中 viewing: a successful AuditEvent in the same window."),
        ("受理 Passed: a record that ended loaded, tombstoned or as a duplicate (e.g. the Patient entry every bundle "
        "repeats); failed: quarantined (ops.quarantine), including files and lines that could not be read."),
        f"目標 Target: {esc(report.inputs['target'])}. {esc(report.target.note)}",
        (f"予測 Projection: {esc(trajectory.MODEL)}; the interval is 95 % (delta method). Observed pace: net new "
        f"connections per month over the last {trajectory.PACE_WINDOW_MONTHS} months. 判定 Status: 順調 on track = "
        "the whole interval before the target date and the observed pace at least the required pace; 要注意 at risk "
        "= the interval straddles the date, or the curve needs the pace to rise; 遅れ off track = the whole "
        "interval after the date."),
        ("天井 Ceiling: the curve assumes every registered facility connects eventually (the roadmap's premise). "
        "If some never do, the projection is optimistic; the EHR survey below shows how far EHR adoption itself, "
        "the prerequisite, is from the target."),
        f"小セル Small cells: {esc(report.inputs['small_cells'])}",
    ]
    return "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def _footer(report: AdoptionReport) -> str:
    keys = ["as_of", "as_of_basis", "warehouse", "last_batch_id", "last_batch_finished_at", "files_landed",
            "unregistered_senders", "reference_files", "code_version", "generated_at"]
    return "<footer>" + "<br>".join(f"{esc(k)}: {esc(report.inputs.get(k))}" for k in keys) + "</footer>"


def render_html(report: AdoptionReport) -> str:
    segments_note = "、".join(f"{SEGMENT_JA[c]} ({SEGMENT_EN[c]})" for c, _, _ in SEGMENTS[2:])
    return f"""<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>電子カルテ情報共有サービス 普及状況 Adoption report {report.as_of}</title><style>{_CSS}</style></head><body>
<h1>電子カルテ情報共有サービス 普及状況レポート <small>Adoption report</small></h1>
<p>基準日 As of <b>{report.as_of}</b> · 目標 Target <b>{report.target.level:.0%}</b> of registered facilities
connected by <b>{report.target.by}</b> · 区分 Segments: {esc(segments_note)}</p>
<h2>概要 <small>Summary</small></h2>{_summary(report)}
<h2>全国の推移と見通し <small>National trajectory</small></h2>{_national_chart(report)}
<h2>施設区分別 <small>By facility segment</small></h2>{_segments(report)}
<h2>都道府県別 <small>By prefecture</small></h2>{_prefectures(report)}
<h2>3文書6情報の送信実績 <small>Coverage of the 3 documents and 6 kinds</small></h2>{_coverage(report)}
<h2>データ品質 <small>Data quality</small></h2>{_quality(report)}
<h2>電子カルテの普及 (前提条件) <small>EHR adoption — the prerequisite</small></h2>{_survey(report)}
<h2>全国統計との比較 <small>Against the national statistics</small></h2>{_reference(report)}
<h2>定義と注記 <small>Definitions and notes</small></h2>{_notes(report)}
{_footer(report)}
</body></html>"""
