"""A tile-grid map of Japan: one equal square per prefecture at its approximate place, coloured by progress.

It is a diagram, not a map: areas are not to scale and neighbours are only roughly kept (Hokkaido is one tile
like Tottori; Okinawa sits bottom-left). It shows all 47 prefectures at a readable size, which a true map
cannot (Tokyo and Osaka would be specks), and it needs no geodata or network.
"""

from pipelines.reports.adoption.charts import esc, fill_for, text_colour

#: JIS code → (column, row) of its tile
TILES = {
    "01": (13, 0), "02": (12, 1), "05": (11, 2), "03": (12, 2),
    "17": (8, 3), "16": (9, 3), "15": (10, 3), "06": (11, 3), "04": (12, 3),
    "32": (3, 4), "31": (4, 4), "28": (5, 4), "26": (6, 4), "18": (7, 4), "21": (8, 4), "20": (9, 4), "10": (10, 4),
    "09": (11, 4), "07": (12, 4),
    "35": (2, 5), "34": (3, 5), "33": (4, 5), "27": (5, 5), "25": (6, 5), "23": (7, 5), "22": (8, 5), "19": (9, 5),
    "11": (10, 5), "08": (11, 5),
    "40": (1, 6), "44": (2, 6), "38": (3, 6), "37": (4, 6), "30": (5, 6), "29": (6, 6), "24": (7, 6), "14": (9, 6),
    "13": (10, 6), "12": (11, 6),
    "42": (0, 7), "41": (1, 7), "43": (2, 7), "39": (3, 7), "36": (4, 7),
    "46": (1, 8), "45": (2, 8),
    "47": (0, 9),
}
TILE = 54
GAP = 4


def short_name(name_ja: str) -> str:
    """東京都 → 東京, 北海道 stays (the tile has room for 3 characters)."""
    return name_ja if name_ja == "北海道" else name_ja[:-1]


def tile_map(values: dict[str, tuple[float | None, str]], names: dict[str, str], target_pct: float,
             title: str) -> str:
    """values: JIS code → (percentage or None, tooltip)."""
    cols = max(c for c, _ in TILES.values()) + 1
    rows = max(r for _, r in TILES.values()) + 1
    width, height = cols * (TILE + GAP), rows * (TILE + GAP) + 24
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{esc(title)}" class="chart tilemap">'),
             f'<text x="0" y="16" class="chart-title">{esc(title)}</text>']
    for code, (col, row) in sorted(TILES.items()):
        pct, tip = values.get(code, (None, "登録施設なし no registered facility"))
        fill = fill_for(pct, target_pct)
        x, y = col * (TILE + GAP), 24 + row * (TILE + GAP)
        label = "–" if pct is None else f"{pct:.0f}%"
        parts.append(
            f'<g data-pref="{code}"><rect x="{x}" y="{y}" width="{TILE}" height="{TILE}" rx="4" fill="{fill}" '
            f'stroke="#ffffff"><title>{esc(names.get(code, code))} {esc(tip)}</title></rect>'
            f'<text x="{x + TILE / 2}" y="{y + 22}" text-anchor="middle" class="tile-name" '
            f'fill="{text_colour(fill)}">{esc(short_name(names.get(code, code)))}</text>'
            f'<text x="{x + TILE / 2}" y="{y + 40}" text-anchor="middle" class="tile-value" '
            f'fill="{text_colour(fill)}">{label}</text></g>')
    parts.append("</svg>")
    return "".join(parts)
