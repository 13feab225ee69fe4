"""The analysts' view catalog: every ViewDefinition JSON file in a folder (default ``data/views/``).

``load_catalog(folder)`` reads, validates and names each file without touching a warehouse. A file that
cannot be used — unreadable JSON, a view that does not compile, a name that clashes with another file's —
becomes a ``CatalogProblem`` naming the file and the failing place in the view; the other views are
unaffected, so one analyst's broken file never takes the code location down.

Naming: the table is ``views.<name>`` where ``<name>`` is the view's ``name`` (the file name when the view
has none), lower-cased, with every run of characters outside ``[a-z0-9_]`` replaced by ``_`` — a valid
Dagster asset name and a plain DuckDB identifier. Lower-casing matters: DuckDB identifiers are
case-insensitive, so ``LabResult`` and ``labresult`` would be the same table.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from pipelines.config import DATA_DIR

from .compiler import OutColumn, ViewError, view_columns

__all__ = [
    "RESERVED_COLUMNS", "Catalog", "CatalogProblem", "CatalogView", "load_catalog", "load_entry", "table_name",
    "views_dir",
]

#: Columns every views.* table carries before the view's own (so analysts can join back to raw/core).
RESERVED_COLUMNS = ("raw_id",)


@dataclass(frozen=True)
class CatalogView:
    name: str  # table (and asset) name inside the views schema
    path: Path
    view: dict
    columns: list[OutColumn]

    @property
    def resource_type(self) -> str:
        return self.view["resource"]

    @property
    def description(self) -> str:
        title = self.view.get("title") or self.view.get("name") or self.name
        text = self.view.get("description")
        return f"{title}: {text}" if isinstance(text, str) and text else str(title)


@dataclass(frozen=True)
class CatalogProblem:
    path: Path
    message: str  # one line: "<file>: <place in the view>: <what is wrong>"


@dataclass
class Catalog:
    views: list[CatalogView] = field(default_factory=list)
    problems: list[CatalogProblem] = field(default_factory=list)


def views_dir() -> Path:
    """The analysts' view folder: $KARTE_VIEWS, else data/views."""
    return Path(os.environ.get("KARTE_VIEWS") or DATA_DIR / "views")


def table_name(raw: str) -> str:
    """``raw`` as a table / asset name: NFKC, lower case, ``[a-z0-9_]`` only, not starting with a digit."""
    text = unicodedata.normalize("NFKC", raw).lower()
    name = re.sub(r"[^a-z0-9_]+", "_", text).strip("_")
    name = re.sub(r"__+", "_", name)
    if name[:1].isdigit():
        name = f"v_{name}"
    return name


def load_catalog(folder: str | Path) -> Catalog:
    """Every ``*.json`` directly in ``folder`` (sorted by file name); a missing folder is an empty catalog."""
    folder = Path(folder)
    catalog = Catalog()
    if not folder.is_dir():
        return catalog
    loaded: list[CatalogView] = []
    for path in sorted(p for p in folder.glob("*.json") if not p.name.startswith(".")):
        try:
            loaded.append(load_entry(path))
        except ViewError as exc:
            catalog.problems.append(CatalogProblem(path, str(exc)))
    by_name: dict[str, list[CatalogView]] = defaultdict(list)
    for entry in loaded:
        by_name[entry.name].append(entry)
    for name, entries in by_name.items():
        if len(entries) == 1:
            catalog.views.append(entries[0])
            continue
        # Ambiguous: building either would silently depend on file order, so neither is built.
        files = ", ".join(_shown(e.path) for e in entries)
        for entry in entries:
            catalog.problems.append(CatalogProblem(
                entry.path, f"{_shown(entry.path)}: name: table views.{name} is defined by several files "
                            f"({files}); rename all but one (none of them is built)"))
    catalog.views.sort(key=lambda e: e.name)
    return catalog


def load_entry(path: Path) -> CatalogView:
    """One view file, validated and named; raises ViewError whose message starts with the file."""
    shown = _shown(path)
    try:
        view = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ViewError(f"{shown}: cannot read the file: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ViewError(f"{shown}: not valid JSON: {exc}") from None
    if not isinstance(view, dict):
        raise ViewError(f"{shown}: must be a JSON object (a ViewDefinition)")
    if view.get("resourceType", "ViewDefinition") != "ViewDefinition":
        raise ViewError(f"{shown}: resourceType: expected 'ViewDefinition', got {view.get('resourceType')!r}")
    raw_name = view.get("name", path.stem)
    if not isinstance(raw_name, str):
        raise ViewError(f"{shown}: name: must be a string")
    name = table_name(raw_name)
    if not name:
        raise ViewError(f"{shown}: name: {raw_name!r} has no letter or digit to name a table after")
    try:
        columns = view_columns(view)
    except ViewError as exc:
        raise ViewError(f"{shown}: {exc}") from None
    for column in columns:
        if column.name.lower() in RESERVED_COLUMNS:
            raise ViewError(f"{shown}: column '{column.name}' is reserved: every views table already "
                            f"carries {', '.join(RESERVED_COLUMNS)}; rename the column")
    lowered = [c.name.lower() for c in columns]
    for i, column in enumerate(columns):
        if lowered.index(column.name.lower()) != i:  # DuckDB column names ignore case
            raise ViewError(f"{shown}: column '{column.name}' differs from another column only by case")
    return CatalogView(name=name, path=path, view=view, columns=columns)


def _shown(path: Path) -> str:
    """The path as the user most likely typed it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
