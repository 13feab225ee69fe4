"""SQL on FHIR v2 ViewDefinition → one set-based DuckDB SELECT.

Every selection of the view becomes, per resource row, either plain column expressions (a selection
that yields exactly one row) or a DuckDB list of STRUCTs (``forEach``, ``forEachOrNull``, ``repeat``,
``unionAll``: any number of rows). The top level unnests that list once, so a view is a single
projection over the source table: no per-resource Python, no correlated subqueries.

Shape of the generated query (the two outer levels only when some selection fans out into rows)::

    SELECT <carry>, <columns in view order>
    FROM (SELECT *, unnest(__rows) AS __row                 -- one output row per list entry
          FROM (SELECT <carry>, <single-row columns>, <row list> AS __rows
                FROM (SELECT <carry>, resource AS __resource,
                             json_extract(resource, [<top-level paths>]) AS __root  -- parsed once
                      FROM <source> AS __src
                      WHERE json_extract_string(resource, '$.resourceType') = '<resource>') AS __res
                WHERE <view.where>) AS __lists) AS __unnested
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .fhir_model import element
from .fhirpath import SQL_TYPE_OF_FHIR, Env, FhirPath, FhirPathError, PathNode, Scope, Val, sql_str

__all__ = ["OutColumn", "ViewError", "compile_view", "load_view", "view_columns"]

#: Compilations at most: each one after the first fetches as JSON the elements the previous one found
#: needed as JSON (see fhirpath.py, "Typed navigation"); views need two or three.
MAX_PASSES = 12

#: How deep ``repeat`` follows its paths. Deeper data raises a query-time error instead of being
#: silently cut (DuckDB lambdas cannot recurse, so the traversal is unrolled this many times).
REPEAT_MAX_DEPTH = 12

_COLUMN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_SELECTION_KEYS = {"column", "select", "forEach", "forEachOrNull", "repeat", "unionAll"}
_ITERATION_KEYS = ("forEach", "forEachOrNull", "repeat")

#: Constant value[x] keys → the SQL type the constant takes in expressions.
# fmt: off
_CONSTANT_TYPES = {
    "valueString": "VARCHAR", "valueCode": "VARCHAR", "valueId": "VARCHAR", "valueUri": "VARCHAR",
    "valueUrl": "VARCHAR", "valueCanonical": "VARCHAR", "valueOid": "VARCHAR", "valueUuid": "VARCHAR",
    "valueMarkdown": "VARCHAR", "valueBase64Binary": "VARCHAR", "valueDate": "VARCHAR",
    "valueDateTime": "VARCHAR", "valueInstant": "VARCHAR", "valueTime": "VARCHAR",
    "valueInteger": "BIGINT", "valueInteger64": "BIGINT", "valuePositiveInt": "BIGINT",
    "valueUnsignedInt": "BIGINT", "valueDecimal": "DOUBLE", "valueBoolean": "BOOLEAN",
}
# fmt: on


class ViewError(Exception):
    """A ViewDefinition that cannot be compiled; the message names the failing place in the view."""


@dataclass(frozen=True)
class OutColumn:
    """One output column: its name, DuckDB type and the view's description of it."""

    name: str
    sql_type: str
    # Not part of equality: unionAll branches must agree on names and types, not on prose.
    description: str = field(default="", compare=False)
    path: str = field(default="", compare=False)


@dataclass
class RowSet:
    """The rows one selection yields for one focus item.

    ``singles`` maps a column to its expression when that column has exactly one value per row of
    the enclosing scope; each entry of ``lists`` is a (``STRUCT[]`` SQL, column names) pair of a
    part that yields any number of rows. The rows are the cross product of the ``lists``.
    """

    columns: list[OutColumn] = field(default_factory=list)
    singles: dict[str, str] = field(default_factory=dict)
    lists: list[tuple[str, list[str]]] = field(default_factory=list)


def compile_view(view: dict, source: str, *, carry: Sequence[str] = ()) -> str:
    """Compile ``view`` to a DuckDB SELECT over ``source`` (a relation with a JSON ``resource`` column).

    ``carry`` names columns of ``source`` copied into every output row, before the view's columns.
    Raises ViewError when the view is invalid.
    """
    return _compile(view, source, carry)[0]


def view_columns(view: dict) -> list[OutColumn]:
    """The view's output columns in order (name, DuckDB type, description); raises ViewError."""
    return _compile(view, "__columns__", ())[1]


def _compile(view: dict, source: str, carry: Sequence[str]) -> tuple[str, list[OutColumn]]:
    if not isinstance(view, dict):
        raise ViewError("view: must be a JSON object")
    resource_type = view.get("resource")
    if not isinstance(resource_type, str) or not re.fullmatch(r"[A-Z][A-Za-z]+", resource_type):
        raise ViewError("resource: required, a FHIR resource type name such as 'Patient'")
    selections = _list_of_objects(view, "select", "select", required=True)
    carry = _checked_carry(carry)
    constants = _constants(view)

    json_keys: frozenset[tuple[str, ...]] = frozenset()
    for _ in range(MAX_PASSES):
        env = Env(resource_type, constants=constants, json_keys=json_keys)
        walker = _Walker(FhirPath(env))
        root = Scope(env.root())
        rows = walker.body({"select": selections}, root, "")
        conditions = [
            walker.condition(entry, root, f"where[{i}]")
            for i, entry in enumerate(_list_of_objects(view, "where", "where"))
        ]
        for name in carry:
            if any(c.name == name for c in rows.columns):
                raise ViewError(f"carry: column '{name}' is also a column of the view")
        sql = env.settle_repeats(_assemble(source, carry, rows, conditions, env, walker))
        needed = env.marked_keys(sql)
        if not needed:
            return sql, list(rows.columns)
        json_keys |= needed
    raise ViewError("select: the typed compilation did not settle (an internal error; please report the view)")


def load_view(path: str | Path) -> dict:
    """Read a ViewDefinition JSON file (UTF-8) and check that it compiles."""
    path = Path(path)
    try:
        view = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ViewError(f"{path}: cannot read a JSON ViewDefinition: {exc}") from None
    try:
        compile_view(view, "__validate__")
    except ViewError as exc:
        raise ViewError(f"{path}: {exc}") from None
    return view


# --------------------------------------------------------------------------------------------------
# Walking the view
# --------------------------------------------------------------------------------------------------


class _Walker:
    def __init__(self, fhirpath: FhirPath):
        self.fp = fhirpath
        self.env = fhirpath.env

    # ---------------------------------------------------------------- selections
    def selection(self, sel: Any, scope: Scope, loc: str) -> RowSet:
        if not isinstance(sel, dict):
            raise ViewError(f"{loc}: must be an object")
        unknown = set(sel) - _SELECTION_KEYS - {"description", "id", "extension", "modifierExtension"}
        if unknown:
            raise ViewError(f"{loc}: unknown key(s) {sorted(unknown)}")
        iterations = [k for k in _ITERATION_KEYS if k in sel]
        if len(iterations) > 1:
            raise ViewError(f"{loc}: only one of {', '.join(iterations)} may be given")
        if not iterations:
            return self.body(sel, scope, loc)

        key = iterations[0]
        items, make_item = self._iteration_items(sel, key, scope, f"{loc}.{key}")
        item, position = self.env.fresh(), self.env.fresh()
        inner = Scope(make_item(item), row_index=f"({position} - 1)")
        rows = self.body(sel, inner, loc)
        per_item = self.as_list(rows)
        return RowSet(
            columns=rows.columns,
            lists=[
                (
                    f"flatten(list_transform({items}, lambda {item}, {position}: {per_item}))",
                    [c.name for c in rows.columns],
                )
            ],
        )

    def _iteration_items(self, sel: dict, key: str, scope: Scope, loc: str) -> tuple[str, Callable[[str], Val]]:
        """The items' list SQL and how to make the Val of one item from its lambda variable."""
        if key == "repeat":
            paths = sel["repeat"]
            if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
                raise ViewError(f"{loc}: must be a non-empty list of FHIRPath strings")
            for i, path in enumerate(paths):  # report a bad path once, at its own place
                self._compile(path, scope, f"{loc}[{i}]")
            return self._typed_repeat(paths, scope, loc) or (self._repeat(paths, scope, REPEAT_MAX_DEPTH, loc), Val)
        path = sel[key]
        if not isinstance(path, str):
            raise ViewError(f"{loc}: must be a FHIRPath string")
        items, make_item = self.fp.iteration(self._compile(path, scope, loc))
        if key == "forEach":
            return items, make_item
        # forEachOrNull: an empty collection still yields one row, evaluated against an empty item
        # (its columns are null and %rowIndex is 0). [NULL] takes the items' type, typed or JSON.
        var = self.env.fresh()
        or_null = f"CASE WHEN len({var}) = 0 THEN [NULL] ELSE {var} END"
        return f"list_transform([{items}], lambda {var}: {or_null})[1]", make_item

    def _typed_repeat(self, paths: list[str], scope: Scope, loc: str) -> tuple[str, Callable[[str], Val]] | None:
        """A repeat over one element that contains itself (Composition.section, QuestionnaireResponse.item) read
        from the typed parse: the levels unrolled into nested STRUCTs, parsed once with the resource, instead of
        each level re-parsing its items' JSON text (the document_section view: 134 → 46 ms for the bench sample's
        478 Compositions). None where that does not apply; the JSON form below then runs."""
        name = paths[0]
        focus = scope.focus
        # one path, and that path a single element name (the pattern column names follow)
        if len(paths) != 1 or not _COLUMN_NAME.fullmatch(name) or focus.node is None or focus.node.rep != "struct":
            return None
        outer = element(focus.node.type_name, name)
        inner = element(outer.type_name, name) if outer is not None else None
        if outer is None or inner is None or not (outer.many and inner.many) or outer.kind != "complex" \
                or inner.type_name != outer.type_name:
            return None
        first = self._compile(name, scope, loc)
        node = first.node
        if node is None or node.rep != "struct":
            return None
        node.repeat = (name, REPEAT_MAX_DEPTH)
        return self._typed_levels(self.fp.typed_items(first), node, REPEAT_MAX_DEPTH, loc), \
            lambda var: self.fp.typed_item(node, var)

    def _typed_levels(self, items: str, node: PathNode, depth: int, loc: str) -> str:
        """Every item of ``items`` (typed, at the level ``depth`` levels above the last) and those below it, in
        depth-first pre-order, each as the STRUCT ``Env.repeat_item`` stands for."""
        key = node.repeat[0]
        var = self.env.fresh()
        item = self.env.repeat_item(node, var)
        if depth == 1:
            message = sql_str(f"{loc}: data nested deeper than {REPEAT_MAX_DEPTH} levels")
            return (f'list_transform({items}, lambda {var}: CASE WHEN coalesce(json_array_length({var}."{key}"), 0) > 0 '
                    f"THEN error({message}) ELSE {item} END)")
        below = self._typed_levels(f'coalesce({var}."{key}", [])', node, depth - 1, loc)
        return f"flatten(list_transform({items}, lambda {var}: list_prepend({item}, {below})))"

    def _repeat(self, paths: list[str], scope: Scope, depth: int, loc: str) -> str:
        """All items reachable through ``paths``, recursively, in depth-first pre-order."""
        children = [self.fp.items(self._compile(p, scope, loc)) for p in paths]
        found = children[0] if len(children) == 1 else f"list_concat({', '.join(children)})"
        if depth == 0:
            message = sql_str(f"{loc}: data nested deeper than {REPEAT_MAX_DEPTH} levels")
            return f"CASE WHEN len({found}) > 0 THEN error({message}) ELSE []::JSON[] END"
        node = self.env.fresh()
        below = self._repeat(paths, Scope(Val(node), scope.row_index), depth - 1, loc)
        return f"flatten(list_transform({found}, lambda {node}: list_prepend({node}, {below})))"

    def body(self, sel: dict, scope: Scope, loc: str) -> RowSet:
        """Columns, nested selects and unionAll of one selection, cross-joined in that order."""
        prefix = f"{loc}." if loc else ""
        parts = [self.columns(_list_of_objects(sel, "column", f"{prefix}column"), scope, f"{prefix}column")]
        for i, child in enumerate(_list_of_objects(sel, "select", f"{prefix}select")):
            parts.append(self.selection(child, scope, f"{prefix}select[{i}]"))
        if "unionAll" in sel:
            parts.append(
                self.union(
                    _list_of_objects(sel, "unionAll", f"{prefix}unionAll", required=True),
                    scope,
                    f"{prefix}unionAll",
                )
            )
        rows = _product(parts, loc or "select")
        if not rows.columns:
            raise ViewError(f"{loc or 'select'}: defines no column")
        return rows

    def union(self, branches: list[dict], scope: Scope, loc: str) -> RowSet:
        compiled = [self.selection(b, scope, f"{loc}[{i}]") for i, b in enumerate(branches)]
        first = compiled[0].columns
        for i, rows in enumerate(compiled[1:], start=1):
            if [c.name for c in rows.columns] != [c.name for c in first]:
                raise ViewError(
                    f"{loc}[{i}]: columns {[c.name for c in rows.columns]} differ from "
                    f"{loc}[0] columns {[c.name for c in first]} (names and order must match)"
                )
            if rows.columns != first:
                raise ViewError(f"{loc}[{i}]: column types differ from those of {loc}[0]")
        lists = [self.as_list(rows) for rows in compiled]
        sql = lists[0] if len(lists) == 1 else f"list_concat({', '.join(lists)})"
        return RowSet(columns=list(first), lists=[(sql, [c.name for c in first])])

    # ---------------------------------------------------------------- columns and where
    def columns(self, entries: list[dict], scope: Scope, loc: str) -> RowSet:
        rows = RowSet()
        for i, col in enumerate(entries):
            here = f"{loc}[{i}]"
            name = col.get("name")
            if not isinstance(name, str) or not _COLUMN_NAME.fullmatch(name):
                raise ViewError(f"{here}.name: must match [A-Za-z][A-Za-z0-9_]*, got {name!r}")
            if name in rows.singles:
                raise ViewError(f"{here}.name: column '{name}' is defined more than once")
            path = col.get("path")
            if not isinstance(path, str):
                raise ViewError(f"{here}.path: must be a FHIRPath string")
            collection = col.get("collection", False)
            if not isinstance(collection, bool):
                raise ViewError(f"{here}.collection: must be true or false")
            declared = col.get("type")
            if declared is not None and not isinstance(declared, str):
                raise ViewError(f"{here}.type: must be a FHIR type name")

            val = self._compile(path, scope, f"{here}.path")
            sql_type = _sql_type(declared) if declared else self.fp.inferred_type(val)
            many_error = (
                f"column '{name}': path \"{path}\" returned more than one value (set collection: true)"
            )
            rows.singles[name] = self.fp.column(val, sql_type, collection=collection, many_error=many_error)
            description = col.get("description")
            rows.columns.append(OutColumn(
                name, f"{sql_type}[]" if collection else sql_type,
                description=description if isinstance(description, str) else "", path=path,
            ))
        return rows

    def condition(self, entry: dict, scope: Scope, loc: str) -> str:
        path = entry.get("path")
        if not isinstance(path, str):
            raise ViewError(f"{loc}.path: must be a FHIRPath string")
        val = self._compile(path, scope, f"{loc}.path")
        try:
            return self.fp.condition(val, f'{loc}.path "{path}"')
        except FhirPathError as exc:
            raise ViewError(f'{loc}.path: {exc} in "{path}"') from None

    def _compile(self, path: str, scope: Scope, loc: str) -> Val:
        try:
            return self.fp.compile(path, scope)
        except FhirPathError as exc:
            raise ViewError(f"{loc}: {exc}") from None

    # ---------------------------------------------------------------- row lists
    def as_list(self, rows: RowSet) -> str:
        """The rows as a DuckDB list of STRUCTs whose fields follow ``rows.columns`` order."""
        variables = [self.env.fresh() for _ in rows.lists]
        source_of = dict(rows.singles)
        for var, (_, names) in zip(variables, rows.lists):
            source_of.update({n: f"{var}.{_quote(n)}" for n in names})
        struct = "{" + ", ".join(f"{sql_str(c.name)}: {source_of[c.name]}" for c in rows.columns) + "}"
        if not rows.lists:
            return f"[{struct}]"
        sql = f"[{struct}]"
        for var, (items, _) in reversed(list(zip(variables, rows.lists))):
            sql = f"flatten(list_transform({items}, lambda {var}: {sql}))"
        return sql

    def cross(self, lists: list[tuple[str, list[str]]]) -> str:
        """The cross product of several row lists (a single list is returned as is)."""
        if len(lists) == 1:
            return lists[0][0]
        names = [n for _, ns in lists for n in ns]
        return self.as_list(RowSet(columns=[OutColumn(n, "") for n in names], lists=lists))


def _product(parts: list[RowSet], loc: str) -> RowSet:
    result = RowSet()
    for part in parts:
        for column in part.columns:
            if any(c.name == column.name for c in result.columns):
                raise ViewError(f"{loc}: column '{column.name}' is defined more than once")
        result.columns.extend(part.columns)
        result.singles.update(part.singles)
        result.lists.extend(part.lists)
    return result


def _assemble(
    source: str, carry: list[str], rows: RowSet, conditions: list[str], env: Env, walker: _Walker
) -> str:
    carried = [_quote(c) for c in carry]
    base_items = [*carried, "resource AS __resource"]
    spec = env.typed_spec()
    if spec:
        # One parse into STRUCTs of exactly what the view navigates (see fhirpath.py, "Typed navigation").
        base_items.append(f"json_transform(resource, {sql_str(spec)}) AS {env.typed_sql}")
    prefetch = env.prefetch_sql("resource")
    if prefetch:
        base_items.append(f"{prefetch} AS {env.root_list}")
    base = (
        f"SELECT {', '.join(base_items)} FROM {source} AS __src "
        f"WHERE json_extract_string(resource, '$.resourceType') = {sql_str(env.resource_type)}"
    )
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    single_items = [f"{sql} AS {_quote(name)}" for name, sql in rows.singles.items()]
    if not rows.lists:
        return f"SELECT {', '.join([*carried, *single_items])} FROM ({base}) AS __res{where}"
    # The row list is built in its own projection and unnested one level up: DuckDB evaluates the
    # other expressions of a SELECT that contains unnest() once per *output* row otherwise.
    per_resource = (
        f"SELECT {', '.join([*carried, *single_items, f'{walker.cross(rows.lists)} AS __rows'])} "
        f"FROM ({base}) AS __res{where}"
    )
    outer = [_quote(c.name) if c.name in rows.singles else f"__row.{_quote(c.name)}" for c in rows.columns]
    return (
        f"SELECT {', '.join([*carried, *outer])} "
        f"FROM (SELECT *, unnest(__rows) AS __row FROM ({per_resource}) AS __lists) AS __unnested"
    )


# --------------------------------------------------------------------------------------------------
# Small validation helpers
# --------------------------------------------------------------------------------------------------


def _list_of_objects(container: dict, key: str, loc: str, *, required: bool = False) -> list[dict]:
    value = container.get(key)
    if value is None:
        if required:
            raise ViewError(f"{loc}: required, a non-empty list")
        return []
    if not isinstance(value, list) or (required and not value):
        raise ViewError(f"{loc}: must be a {'non-empty ' if required else ''}list")
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise ViewError(f"{loc}[{i}]: must be an object")
    return value


def _constants(view: dict) -> dict[str, Val]:
    constants: dict[str, Val] = {}
    for i, const in enumerate(_list_of_objects(view, "constant", "constant")):
        name = const.get("name")
        if not isinstance(name, str) or not _COLUMN_NAME.fullmatch(name):
            raise ViewError(f"constant[{i}].name: must match [A-Za-z][A-Za-z0-9_]*, got {name!r}")
        if name in constants:
            raise ViewError(f"constant[{i}].name: constant '{name}' is defined more than once")
        values = [k for k in const if k.startswith("value")]
        if len(values) != 1 or values[0] not in _CONSTANT_TYPES:
            raise ViewError(f"constant[{i}]: needs exactly one value[x] of a primitive type, got {values}")
        constants[name] = _constant_val(const[values[0]], _CONSTANT_TYPES[values[0]], f"constant[{i}]")
    return constants


def _constant_val(value: Any, sql_type: str, loc: str) -> Val:
    expected = {"VARCHAR": str, "BOOLEAN": bool, "BIGINT": int, "DOUBLE": (int, float)}[sql_type]
    if not isinstance(value, expected) or (sql_type != "BOOLEAN" and isinstance(value, bool)):
        raise ViewError(f"{loc}: value {value!r} does not fit its value[x] type")
    if sql_type == "VARCHAR":
        return Val(sql_str(value), type="VARCHAR")
    if sql_type == "BOOLEAN":
        return Val("true" if value else "false", type="BOOLEAN")
    if sql_type == "DOUBLE":
        return Val(f"CAST({json.dumps(value)} AS DOUBLE)", type="DOUBLE")
    return Val(f"CAST({value} AS BIGINT)", type="BIGINT")


def _sql_type(fhir_type: str) -> str:
    if fhir_type in SQL_TYPE_OF_FHIR:
        return SQL_TYPE_OF_FHIR[fhir_type]
    # Other primitives (string, code, dateTime, ...) keep their ISO/text form; complex types stay JSON.
    return "VARCHAR" if fhir_type[:1].islower() else "JSON"


def _checked_carry(carry: Sequence[str]) -> list[str]:
    if isinstance(carry, str):
        raise ViewError("carry: must be a sequence of column names, not a single string")
    names = list(carry)
    for name in names:
        if not isinstance(name, str) or not name or name.startswith("__") or '"' in name:
            raise ViewError(f"carry: invalid column name {name!r}")
    if len(set(names)) != len(names):
        raise ViewError("carry: column names repeat")
    return names


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
