"""Keeps the JP-CLINS view pack's inlined views identical to the staging views they test.

The pack (tests/views/jp_clins_pack/*.json) is in the SQL on FHIR v2 test-suite format, so every test
carries its ViewDefinition inline — any SoF runner can run the pack as it is. Each inlined view is a copy
of the staging view with the same ``name`` in pipelines/views/staging/; tests/views/test_jp_clins_pack.py
fails when a copy differs from its source. After changing a staging view::

    .venv/bin/python -m tests.views.pack_sync     # rewrite the inlined copies from the staging views

then re-check the expected rows of that view's pack file by hand (they are the point of the pack).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PACK_DIR = Path(__file__).with_name("jp_clins_pack")
STAGING_DIR = Path(__file__).resolve().parents[2] / "pipelines" / "views" / "staging"


def staging_views() -> dict[str, tuple[Path, dict]]:
    """Every staging view by its ``name``: (file, view)."""
    views = {}
    for path in sorted(STAGING_DIR.glob("*.json")):
        view = json.loads(path.read_text(encoding="utf-8"))
        views[view["name"]] = (path, view)
    return views


def pack_files() -> list[Path]:
    return sorted(PACK_DIR.glob("*.json"))


def load_pack(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def stale_copies() -> list[str]:
    """'<pack file>::<test title>' of every inlined view that differs from (or has no) staging source."""
    sources = staging_views()
    stale = []
    for path in pack_files():
        for test in load_pack(path)["tests"]:
            source = sources.get(test["view"].get("name"))
            if source is None or source[1] != test["view"]:
                stale.append(f"{path.name}::{test['title']}")
    return stale


def sync() -> list[str]:
    """Rewrite every stale inlined view from its staging source; returns what changed."""
    sources = staging_views()
    changed = []
    for path in pack_files():
        pack = load_pack(path)
        touched = False
        for test in pack["tests"]:
            name = test["view"].get("name")
            if name not in sources:
                raise SystemExit(f"{path.name}::{test['title']}: no staging view named {name!r}")
            if test["view"] != sources[name][1]:
                test["view"] = sources[name][1]
                changed.append(f"{path.name}::{test['title']}")
                touched = True
        if touched:
            path.write_text(json.dumps(pack, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return changed


if __name__ == "__main__":
    done = sync()
    print("\n".join(f"synced {c}" for c in done) or "every inlined view already matches its staging view")
    sys.exit(0)
