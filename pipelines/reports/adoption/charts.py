"""Inline SVG charts (no script, no external font or stylesheet): lines with bands and markers, horizontal bars.

x values are decimal years (date → year + fraction), y values percentages. Every mark carries an SVG <title>,
so hovering shows the exact figure with its numerator and denominator.
"""

import html
import unicodedata
from dataclasses import dataclass, field
from datetime import date

#: sequential blues (ColorBrewer "Blues", 5 classes) for 0–20–40–60–80–100 %; reached target in green
PALETTE = ["#eff3ff", "#bdd7e7", "#6baed6", "#3182bd", "#08519c"]
REACHED = "#238b45"
NO_DATA = "#d9d9d9"
SERIES_COLOURS = ["#08519c", "#d95f02", "#7570b3", "#1b9e77", "#e7298a", "#66a61e", "#a6761d"]


def decimal_year(day: date) -> float:
    start = date(day.year, 1, 1)
    return day.year + (day - start).days / (date(day.year + 1, 1, 1) - start).days


def fill_for(pct: float | None, target_pct: float) -> str:
    if pct is None:
        return NO_DATA
    if pct >= target_pct:
        return REACHED
    return PALETTE[min(int(pct // 20), len(PALETTE) - 1)]


def text_colour(fill: str) -> str:
    return "#ffffff" if fill in (PALETTE[3], PALETTE[4], REACHED) else "#222222"


def text_width(text: str, size: float = 12) -> float:
    """Rough rendered width: full-width (Japanese) characters are about twice as wide as Latin ones."""
    wide = sum(1 for ch in text if unicodedata.east_asian_width(ch) in "WF")
    return (wide * 1.0 + (len(text) - wide) * 0.55) * size


def esc(text: object) -> str:
    return html.escape("" if text is None else str(text), quote=True)


@dataclass
class Series:
    name: str
    points: list[tuple[float, float, str]]  # (x, y, tooltip)
    colour: str
    dashed: bool = False
    band: list[tuple[float, float, float]] = field(default_factory=list)  # (x, low, high)
    markers: bool = True
    in_legend: bool = True


@dataclass
class Marker:
    x: float
    label: str


def line_chart(series: list[Series], x_range: tuple[float, float], title: str, y_label: str = "%",
               y_max: float = 100.0, hlines: list[tuple[float, str]] = (), vlines: list[Marker] = (),
               points_of_interest: list[tuple[float, float, str]] = (), width: int = 820, height: int = 320) -> str:
    left, right, top, bottom = 48, 16, 28, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    x0, x1 = x_range
    span = max(x1 - x0, 1e-9)

    def sx(x: float) -> float:
        return left + (x - x0) / span * plot_w

    def sy(y: float) -> float:
        return top + plot_h - max(min(y, y_max), 0) / y_max * plot_h

    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{esc(title)}" class="chart">'),
             f'<text x="{left}" y="16" class="chart-title">{esc(title)}</text>']
    for k in range(6):  # y grid every 20 %
        y = y_max * k / 5
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" class="tick" text-anchor="end">{y:.0f}</text>')
    step = 1 if span <= 12 else 2 if span <= 24 else 5
    year = int(x0) + (1 if x0 > int(x0) else 0)
    while year <= x1:
        if year % step == 0:
            parts.append(f'<line x1="{sx(year):.1f}" x2="{sx(year):.1f}" y1="{top}" y2="{top + plot_h}" class="grid"/>'
                         f'<text x="{sx(year):.1f}" y="{top + plot_h + 16}" class="tick" text-anchor="middle">'
                         f'{year}</text>')
        year += 1
    parts.append(f'<text x="12" y="{top + plot_h / 2:.0f}" class="tick" transform="rotate(-90 12 '
                 f'{top + plot_h / 2:.0f})" text-anchor="middle">{esc(y_label)}</text>')
    for y, label in hlines:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" class="target"/>'
                     f'<text x="{left + plot_w - 4}" y="{sy(y) - 4:.1f}" class="tick target-label" '
                     f'text-anchor="end">{esc(label)}</text>')
    for marker in vlines:
        parts.append(f'<line x1="{sx(marker.x):.1f}" x2="{sx(marker.x):.1f}" y1="{top}" y2="{top + plot_h}" '
                     f'class="marker"/><text x="{sx(marker.x) + 4:.1f}" y="{top + 10}" class="tick">'
                     f'{esc(marker.label)}</text>')
    for s in series:
        if s.band:
            upper = " ".join(f"{sx(x):.1f},{sy(hi):.1f}" for x, _, hi in s.band)
            lower = " ".join(f"{sx(x):.1f},{sy(lo):.1f}" for x, lo, _ in reversed(s.band))
            parts.append(f'<polygon points="{upper} {lower}" fill="{s.colour}" fill-opacity="0.15" stroke="none">'
                         f'<title>{esc(s.name)}: 95 % interval</title></polygon>')
        if len(s.points) > 1:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _ in s.points)
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            parts.append(f'<polyline points="{path}" fill="none" stroke="{s.colour}" stroke-width="2"{dash}/>')
        if s.markers:
            for x, y, tip in s.points:
                parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{s.colour}">'
                             f'<title>{esc(tip)}</title></circle>')
    for x, y, tip in points_of_interest:
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" class="poi"><title>{esc(tip)}</title></circle>')
    entries = [x for x in series if x.in_legend]
    rows, lx, row = [], left, 0
    for entry in entries:  # legend under the plot, wrapped to the chart's width
        w = 34 + text_width(entry.name, 11)
        if lx + w > width and lx > left:
            lx, row = left, row + 1
        rows.append((entry, lx, row))
        lx += w
    extra = 16 * (row + 1) if entries else 0
    for entry, x, r in rows:
        y = height + 8 + r * 16
        dash = ' stroke-dasharray="6 4"' if entry.dashed else ""
        parts.append(f'<line x1="{x}" x2="{x + 18}" y1="{y - 4}" y2="{y - 4}" stroke="{entry.colour}" '
                     f'stroke-width="2"{dash}/><text x="{x + 22}" y="{y}" class="tick">{esc(entry.name)}</text>')
    parts[0] = parts[0].replace(f'viewBox="0 0 {width} {height}"', f'viewBox="0 0 {width} {height + extra}"').replace(
        f'height="{height}"', f'height="{height + extra}"', 1)
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(rows: list[tuple[str, float | None, str]], title: str, target_pct: float | None = None,
               width: int = 820) -> str:
    """One bar per row: (label, percentage or None, tooltip / annotation)."""
    label_w, bar_h, gap, top = 230, 18, 6, 26
    plot_w = width - label_w - 90
    height = top + len(rows) * (bar_h + gap) + 10
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{esc(title)}" class="chart">'),
             f'<text x="0" y="16" class="chart-title">{esc(title)}</text>']
    for i, (label, pct, note) in enumerate(rows):
        y = top + i * (bar_h + gap)
        w = 0 if pct is None else max(plot_w * min(pct, 100) / 100, 1)
        fill = fill_for(pct, target_pct if target_pct is not None else 101)
        parts.append(f'<text x="0" y="{y + 13}" class="tick">{esc(label)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{plot_w}" height="{bar_h}" fill="#f3f3f3"/>'
                     f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{fill}" stroke="#08306b" '
                     f'stroke-width="0.5"><title>{esc(note)}</title></rect>'
                     f'<text x="{label_w + plot_w + 6}" y="{y + 13}" class="tick">'
                     f'{"–" if pct is None else f"{pct:.1f} %"}</text>')
    if target_pct is not None:
        tx = label_w + plot_w * target_pct / 100
        parts.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top - 4}" y2="{height - 6}" class="target"/>'
                     f'<text x="{tx - 4:.1f}" y="{top - 8}" class="tick target-label" text-anchor="end">'
                     f'目標 target {target_pct:.0f} %</text>')
    parts.append("</svg>")
    return "".join(parts)


def legend(target_pct: float) -> str:
    """The colour classes of the map and the bars, as a small SVG."""
    labels = ["0–20 %", "20–40 %", "40–60 %", "60–80 %", f"80–{target_pct:.0f} %", f"≥ {target_pct:.0f} % (目標達成)",
              "登録なし no facility"]
    fills = [*PALETTE, REACHED, NO_DATA]
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 820 24" width="820" height="24" class="legend">']
    x = 0
    for fill, label in zip(fills, labels):
        parts.append(f'<rect x="{x}" y="4" width="16" height="16" fill="{fill}" stroke="#999" stroke-width="0.5"/>'
                     f'<text x="{x + 20}" y="17" class="tick">{esc(label)}</text>')
        x += 30 + text_width(label)
    parts.append("</svg>")
    return "".join(parts)
