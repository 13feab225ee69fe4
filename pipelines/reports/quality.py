"""Data-quality report: per facility and rule, what was rejected and why — the receipt a hospital gets.

Reads ops.quarantine (+ core.facility for names). Writes `quality_by_facility_rule.csv`,
`quality_rejections.csv` (one row per rejection, without the raw text) and a self-contained
`quality.html` (no network requests; inline CSS and SVG).
"""

import html
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from pipelines.rules import RULES

_RULE_FRAME = pl.DataFrame(
    [(r.rule_id, r.scope, r.title, r.action) for r in RULES.values()],
    schema=["rule_id", "rule_scope", "rule_title", "action"],
    orient="row",
)


def quality_by_facility_rule(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """grain: one row per sending facility × rule."""
    frame = con.sql(
        """
        SELECT coalesce(q.institution_number, '(unknown sender)') AS institution_number,
               f.facility_name, f.prefecture_code, q.rule_id,
               sum(q.record_count)::BIGINT AS records_rejected,
               count(*)::BIGINT AS rejections,
               count(DISTINCT q.source_file)::BIGINT AS files,
               min(q.message) AS example_message,
               min(q.source_file) AS example_file
        FROM ops.quarantine q LEFT JOIN core.facility f ON f.institution_number = q.institution_number
        GROUP BY ALL ORDER BY institution_number, records_rejected DESC, rule_id
        """
    ).pl()
    return frame.join(_RULE_FRAME, on="rule_id", how="left")


def quality_rejections(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """grain: one row per quarantine row (no raw text: the receipt names the record, not its content)."""
    return con.sql(
        """
        SELECT institution_number, source_file, line_no, entry_index, scope, bundle_identifier, resource_type,
               resource_identifier, rule_id, message, record_count
        FROM ops.quarantine ORDER BY institution_number, source_file, line_no, entry_index, rule_id
        """
    ).pl()


def _loaded_by_facility(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return con.sql(
        """
        SELECT coalesce(m.sender, '(unknown sender)') AS institution_number,
               count(*) FILTER (WHERE o.outcome = 'loaded')::BIGINT AS loaded,
               count(*)::BIGINT AS records
        FROM raw.resource r JOIN ops.file_manifest m USING (file_id) JOIN ops.record_outcome o USING (raw_id)
        GROUP BY ALL
        """
    ).pl()


def _bar_chart(rows: list[tuple[str, int]], width: int = 560) -> str:
    if not rows:
        return ""
    top = max(n for _, n in rows) or 1
    bar_h, label_w = 18, 190
    height = len(rows) * (bar_h + 6)
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
              'aria-label="rejected records by rule">')]
    for i, (label, n) in enumerate(rows):
        y = i * (bar_h + 6)
        w = max(1, int((width - label_w - 60) * n / top))
        parts.append(
            f'<text x="0" y="{y + 13}" font-size="12">{html.escape(label)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="#c0392b"/>'
            f'<text x="{label_w + w + 4}" y="{y + 13}" font-size="12">{n}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _html_table(frame: pl.DataFrame, columns: list[tuple[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if row[c] is None else str(row[c]))}</td>" for c, _ in columns) + "</tr>"
        for row in frame.iter_rows(named=True)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(by_rule: pl.DataFrame, loaded: pl.DataFrame, generated_at: str) -> str:
    totals = by_rule.group_by("rule_id", "rule_title").agg(pl.col("records_rejected").sum()).sort(
        "records_rejected", descending=True)
    chart = _bar_chart([(f"{r['rule_id']} {r['rule_title'] or ''}"[:30], r["records_rejected"])
                        for r in totals.iter_rows(named=True)])
    sections = []
    facilities = by_rule.join(loaded, on="institution_number", how="left")
    for (inst,), group in facilities.group_by("institution_number", maintain_order=True):
        first = group.row(0, named=True)
        name = first["facility_name"] or ""
        sections.append(
            f"<section><h3>{html.escape(inst)} {html.escape(name)}</h3>"
            f"<p>受理 accepted records: {first['loaded'] or 0} / 受信 received: {first['records'] or 0}</p>"
            + _html_table(group, [("rule_id", "ルール Rule"), ("rule_title", "内容 What"),
                                  ("records_rejected", "件数 Records"), ("files", "ファイル Files"),
                                  ("example_message", "例 Example"), ("example_file", "ファイル例 Example file"),
                                  ("action", "対応 What to do")])
            + "</section>"
        )
    total = int(by_rule["records_rejected"].sum()) if by_rule.height else 0
    return f"""<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>Karte データ品質レポート Data-quality report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}
th,td{{border:1px solid #ccc;padding:4px 8px;font-size:13px;vertical-align:top}}th{{background:#f3f3f3}}
footer{{color:#666;font-size:12px;margin-top:2em}}</style></head><body>
<h1>データ品質レポート <small>Data-quality report</small></h1>
<p>不合格レコード Rejected records: <b>{total}</b> across {by_rule['institution_number'].n_unique() if by_rule.height else 0}
senders. Each rule id is the JP-CLINS IG's own (R…) or Karte's (K-…).</p>
<h2>ルール別 By rule</h2>{chart or '<p>No rejections.</p>'}
<h2>医療機関別 By facility</h2>{''.join(sections) or '<p>No rejections.</p>'}
<footer>Generated {generated_at} by Karte from ops.quarantine.</footer></body></html>"""


def write_quality_report(con: duckdb.DuckDBPyConnection, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    by_rule = quality_by_facility_rule(con)
    paths = [out_dir / "quality_by_facility_rule.csv", out_dir / "quality_rejections.csv", out_dir / "quality.html"]
    by_rule.write_csv(paths[0])
    quality_rejections(con).write_csv(paths[1])
    generated_at = datetime.now(UTC).isoformat(timespec="seconds")
    paths[2].write_text(render_html(by_rule, _loaded_by_facility(con), generated_at), encoding="utf-8")
    return paths
