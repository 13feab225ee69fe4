"""views: one table per analyst ViewDefinition in data/views/ (or $KARTE_VIEWS), rebuilt from the raw layer.

Dropping a ViewDefinition JSON file into the folder adds an asset ``views/<name>`` (group ``views``)
whose table ``views.<name>`` holds the view's rows over every record that reached core (see
pipelines/views/materialize.py for exactly which), rebuilt whole on each materialisation. Its columns are
documented from the view at definition time.

A file that cannot be used is skipped, never fatal: the code location still loads with every other view,
and each problem is reported once at definition time as a ``ViewCatalogWarning`` on stderr (``dagster dev``,
``karte run``) naming the file and the failing place in the view. ``karte view list`` shows the same
verdicts on demand (exit 1 when a file would be skipped). A view that compiles but fails while running
(a column path that returns several values for some resource) fails its materialisation with a one-line
message naming the table and file; the other views are unaffected.
"""

from __future__ import annotations

import warnings
from contextlib import closing
from pathlib import Path

import dagster as dg
import duckdb

from assets.core import core_assets
from pipelines.resources import KarteWarehouse
from pipelines.views.catalog import Catalog, CatalogView, load_catalog, views_dir
from pipelines.views.materialize import SCHEMA, build_view_table, raw_identifier_columns

GROUP = "views"


class ViewCatalogWarning(UserWarning):
    """A view file in the catalog folder was skipped (the message says which and why)."""


def column_schema(entry: CatalogView) -> dg.TableSchema:
    carried = dg.TableColumn("raw_id", "BIGINT", description="raw.resource row of this row (join core.* USING (raw_id))")
    return dg.TableSchema(columns=[carried] + [
        dg.TableColumn(c.name, c.sql_type, description=c.description or f"FHIRPath: {c.path}")
        for c in entry.columns
    ])


def view_asset(entry: CatalogView) -> dg.AssetsDefinition:
    key = [SCHEMA, entry.name]

    @dg.asset(
        key=key, group_name=GROUP, kinds={"duckdb"}, deps=[k for a in core_assets for k in a.keys],
        description=f"{SCHEMA}.{entry.name}: {entry.description} (view file {entry.path.name})",
        metadata={"dagster/column_schema": column_schema(entry), "view_file": str(entry.path),
                  "resource_type": entry.resource_type},
        check_specs=[dg.AssetCheckSpec("no_raw_identifiers", asset=key, blocking=True,
                                       description="no column holds a raw patient identifier, name or address")],
    )
    def _view(karte: KarteWarehouse):
        with closing(karte.connect()) as con:
            try:
                rows = build_view_table(con, entry)
            except duckdb.Error as exc:  # e.g. a column path that returned several values for some resource
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise dg.Failure(description=f"views.{entry.name} ({entry.path.name}): the view failed while "
                                             f"running: {first}") from None
            hits = raw_identifier_columns(con, entry.name)
            if hits:
                # Never leave raw identifiers readable: the table goes, the failed check says why.
                con.execute(f'DROP TABLE {SCHEMA}."{entry.name}"')
            yield dg.MaterializeResult(metadata={"dagster/row_count": 0 if hits else rows,
                                                 "table": f"{SCHEMA}.{entry.name}", "dropped": bool(hits)})
            yield dg.AssetCheckResult(check_name="no_raw_identifiers", passed=not hits,
                                      metadata={"columns": sorted(hits)})

    return _view


def build_view_assets(folder: str | Path) -> tuple[list[dg.AssetsDefinition], Catalog]:
    """Assets for every usable view in ``folder``; each unusable file is warned about and skipped."""
    catalog = load_catalog(folder)
    for problem in catalog.problems:
        message = f"view skipped: {problem.message}"
        warnings.warn(message, ViewCatalogWarning, stacklevel=2)
    return [view_asset(entry) for entry in catalog.views], catalog


view_assets, view_catalog = build_view_assets(views_dir())
