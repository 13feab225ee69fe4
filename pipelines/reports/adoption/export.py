"""Writing the adoption report's files: adoption.html, adoption.xlsx, and one .csv / .parquet per table."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipelines.reports.adoption.labels import COLUMNS_JA
from pipelines.reports.adoption.report import TABLES, AdoptionReport
from pipelines.reports.xlsx import write_xlsx

FORMATS = ("html", "csv", "xlsx", "parquet")


def parse_formats(text: str) -> tuple[str, ...]:
    """'html,csv' → ('html', 'csv'); raises ValueError naming an unknown format."""
    formats = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"unknown report format {', '.join(unknown) or '(none)'}: choose from {', '.join(FORMATS)}")
    return formats


def write_adoption_report(report: AdoptionReport, out_dir: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    # polars writes the CSV and Parquet files without the GIL, so they go in a thread while this one renders
    # the HTML and the workbook (pure Python): ~0.5 s of the national-scale report's ~10 s
    with ThreadPoolExecutor(max_workers=1) as background:
        tables = background.submit(_write_tables, report, out_dir, formats)
        paths: list[Path] = []
        if "html" in formats:
            from pipelines.reports.adoption.page import render_html

            path = out_dir / "adoption.html"
            path.write_text(render_html(report), encoding="utf-8")
            paths.append(path)
        if "xlsx" in formats:
            sheets = [(TABLES[name][0], frame, [COLUMNS_JA.get(c, c) for c in frame.columns])
                      for name, frame in report.tables.items()]
            paths.append(write_xlsx(out_dir / "adoption.xlsx", sheets))
        return paths + tables.result()


def _write_tables(report: AdoptionReport, out_dir: Path, formats: tuple[str, ...]) -> list[Path]:
    paths = []
    for name, frame in report.tables.items():
        if "csv" in formats:
            # with a BOM: Excel, which analysts open CSV files in, reads UTF-8 Japanese correctly only then
            frame.write_csv(out_dir / f"{name}.csv", include_bom=True)
            paths.append(out_dir / f"{name}.csv")
        if "parquet" in formats:
            frame.write_parquet(out_dir / f"{name}.parquet")
            paths.append(out_dir / f"{name}.parquet")
    return paths
