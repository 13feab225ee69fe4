"""The base FHIR structure of every resource, checked without pydantic: a schema derived once from the
fhir.resources R4B models, compiled into small per-type tables of checker closures.

fhir.resources validates ~1.5–3k resources/s per core; this check walks the dict orjson already made and
runs at tens of thousands per core (docs/structure.md has the measured rates), so it can run on every resource
while fhir.resources runs where it adds value (pipelines/ingest/structure.py).

The schema (data/reference/fhir/structure_schema.r4b.json, one entry per FHIR type — resources, data types
and backbone elements) holds, per element: its JSON key, its type (a primitive such as ``dateTime`` or a
complex type such as ``CodeableConcept``; ``Resource`` = any resource, chosen by its ``resourceType``) and
whether it is an array; per type: the elements that must be present, the primitives that need a value or an
extension (FHIR's "special case" for min 1), the choice groups (``value[x]``: at most one, maybe one
required) and the elements that refuse ``null`` (pydantic takes it for all others). It is committed because deriving it imports every model (~2 s); tests/ingest/test_structure_schema.py
checks that it equals a fresh derivation.

What is checked is what fhir.resources checks, with JSON types read strictly (FHIR JSON): a boolean is
``true``/``false`` and an integer a JSON number, where fhir.resources' pydantic also takes ``"true"`` or
``"5"``; a date is a string, where pydantic also takes a Unix time. The caller sends whatever this check
rejects to fhir.resources, whose verdict is the one of record, so reading strictly costs a re-check, never a
wrong rejection. Messages name paths, never values (values may be patient identifiers).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import typing
from collections.abc import Callable

from pipelines.config import REFERENCE_DIR
from pipelines.views.fhir_model import unwrap_annotation

__all__ = ["NO_RESOURCE", "SCHEMA_PATH", "derive_schema", "load_schema", "structure_problem", "walk_problem",
           "warm_up", "write_schema"]

SCHEMA_PATH = REFERENCE_DIR / "fhir" / "structure_schema.r4b.json"
NO_RESOURCE = "entry has no resource with a known FHIR resourceType"
#: the element type that holds any resource (contained, Bundle.entry.resource, Parameters.parameter.resource)
ANY_RESOURCE = "Resource"
PRIMITIVE_EXTENSION = "FHIRPrimitiveExtension"

# ---------------------------------------------------------------------------------------------------------
# Deriving the schema from the fhir.resources models (tests and the refresh script only: slow, imports all)
# ---------------------------------------------------------------------------------------------------------


def derive_schema() -> dict:
    """{"source": ..., "types": {type name: {...}}} from the fhir.resources R4B models (see the module doc)."""
    import fhir.resources
    from fhir.resources.R4B import __fhir_version__, get_fhir_model_class
    from fhir.resources.R4B import fhirtypes as ft
    from fhir_core.constraints import FHIR_PRIMITIVES_MAPS
    from fhir_core.types import FhirBase, FhirElementOrResourceBase

    names = sorted(n[:-4] for n in dir(ft)
                   if n.endswith("Type") and isinstance(getattr(ft, n), type) and issubclass(getattr(ft, n), FhirBase))
    found = {}
    for name in names:
        model = get_fhir_model_class(name)
        if model.__name__ != name:
            raise RuntimeError(f"fhir.resources maps {name} to {model.__name__}")
        found[name] = _derive_type(model, FHIR_PRIMITIVES_MAPS, FhirBase, FhirElementOrResourceBase)
    return {"source": f"fhir.resources {fhir.resources.__version__} R4B (FHIR {__fhir_version__})", "types": found}


def _derive_type(model, primitive_names, fhir_base, any_resource_base) -> dict:
    elements = {}
    for field_name, field in model.model_fields.items():
        if field_name == "fhir_comments":  # on every model; the checker allows it everywhere
            continue
        many, inner = unwrap_annotation(field.annotation)
        if isinstance(inner, type) and issubclass(inner, any_resource_base):
            type_name = ANY_RESOURCE
        elif isinstance(inner, type) and issubclass(inner, fhir_base):
            type_name = inner.__name__[: -len("Type")]
        elif inner in primitive_names:
            type_name = primitive_names[inner]
        else:
            raise RuntimeError(f"{model.__name__}.{field_name}: unexpected annotation {field.annotation!r}")
        elements[field.alias or field_name] = type_name + ("[]" if many else "")
    aliases = {name: field.alias or name for name, field in model.model_fields.items()}
    choices = []
    for prefix, fields in sorted(model.get_one_of_many_fields(None).items()):
        extra = model.model_fields[fields[0]].json_schema_extra
        choices.append([prefix, extra["one_of_many_required"] is True, sorted(aliases[f] for f in fields)])
    derived = {
        "resource": model.has_resource_base(),
        "elements": dict(sorted(elements.items())),
        # must be present (null allowed: pydantic accepts None for these)
        "required": sorted(aliases[name] for name, field in model.model_fields.items() if field.is_required()),
        # must have a value, or an extension in its _element sibling
        "required_values": sorted([name, aliases[ext] if ext else None]
                                  for name, ext in model.get_required_fields(None)),
        "choices": choices,
        # null is taken for any element (pydantic's Optional, or a FHIR type's own validator) but a list type
        "null_rejected": sorted(aliases[name] for name, field in model.model_fields.items()
                                if typing.get_origin(field.annotation) is list),
    }
    if model.__name__ == PRIMITIVE_EXTENSION:
        # its own model validator: an empty _element object says nothing
        derived["one_of_required"] = ["extension", "fhir_comments", "id"]
    return derived


def write_schema(path=SCHEMA_PATH) -> None:
    """Refresh the committed schema (after a fhir.resources upgrade): one type per line, for readable diffs."""
    schema = derive_schema()
    lines = [json.dumps(name, ensure_ascii=False) + ": " + json.dumps(spec, ensure_ascii=False, sort_keys=True)
             for name, spec in schema["types"].items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"source": ' + json.dumps(schema["source"]) + ', "types": {\n' + ",\n".join(lines) + "\n}}\n",
                    encoding="utf-8")


@functools.cache
def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------------
# Primitive values: what fhir.resources' pydantic types accept, with JSON types read strictly
# ---------------------------------------------------------------------------------------------------------

# pydantic's patterns run on Rust's regex, whose \s is Unicode White_Space; Python's \s also takes \x1c-\x1f.
_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_CODE = re.compile(f"[^{_WS}]+(?:[{_WS}][^{_WS}]+)*")
# FHIR string: pydantic searches for "[ \r\n\t\S]+", so only an empty string or one made of other
# whitespace (U+3000, NBSP, …) fails
_STRING_CHAR = re.compile(f"[ \r\n\t]|[^{_WS}]")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,255}")
_OID = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
_UUID4 = re.compile(r"(?:urn:uuid:)?(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
                    r"|[0-9a-fA-F]{12}4[0-9a-fA-F]{19}|\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-"
                    r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\})")
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_ZONE = r"(Z|[+\-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
# fhir_core's regexes (fhir_core/types.py), with the day captured so the calendar can be checked
_DATE = re.compile(rf"{_YEAR}(-(0[1-9]|1[0-2])(-(?P<day>0[1-9]|[1-2][0-9]|3[0-1]))?)?")
_DATETIME = re.compile(rf"{_YEAR}(-(0[1-9]|1[0-2])(-(?P<day>0[1-9]|[1-2][0-9]|3[0-1])(T{_TIME}{_ZONE})?)?)?")
_INSTANT = re.compile(rf"{_YEAR}-(0[1-9]|1[0-2])-(?P<day>0[1-9]|[1-2][0-9]|3[0-1])T{_TIME}{_ZONE}")
_TIME_ONLY = re.compile(_TIME)
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_INT32 = 2**31 - 1


def _real_day(text: str, match: re.Match | None) -> bool:
    """The regex matched; a full date must also exist in the calendar (pydantic parses it)."""
    if match is None:
        return False
    day = match.group("day")
    if day is None:
        return True
    year, month, day = int(text[:4]), int(text[5:7]), int(day)
    if month == 2 and day == 29:
        return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return day <= _DAYS_IN_MONTH[month]


def _base64(value: str) -> bool:
    try:
        base64.b64decode(value.encode("utf-8"))  # what pydantic's Base64Bytes does: non-alphabet bytes dropped
    except (binascii.Error, ValueError):
        return False
    return True


def _is_string(value) -> bool:
    # isspace() is false as soon as one character is not whitespace, which Rust's \S then matches too
    return type(value) is str and value != "" and (not value.isspace() or _STRING_CHAR.search(value) is not None)


def _text(value) -> bool:
    return type(value) is str


def _matches(pattern: re.Pattern) -> Callable[[object], bool]:
    fullmatch = pattern.fullmatch
    return lambda value: type(value) is str and fullmatch(value) is not None


def _calendar(pattern: re.Pattern) -> Callable[[object], bool]:
    fullmatch = pattern.fullmatch
    return lambda value: type(value) is str and _real_day(value, fullmatch(value))


def _int_between(low: int, high: int) -> Callable[[object], bool]:
    return lambda value: type(value) is int and low <= value <= high  # bool is not an int here


#: primitive type → (accepts the JSON value, what was expected)
PRIMITIVES: dict[str, tuple[Callable[[object], bool], str]] = {
    "boolean": (lambda value: value is True or value is False, "a JSON boolean"),
    "integer": (_int_between(-_INT32 - 1, _INT32), "a 32-bit JSON integer"),
    "unsignedInt": (_int_between(0, _INT32), "a JSON integer ≥ 0"),
    "positiveInt": (_int_between(1, _INT32), "a JSON integer ≥ 1"),
    "decimal": (lambda value: type(value) is float or type(value) is int, "a JSON number"),
    "string": (_is_string, "a non-blank JSON string"),
    "code": (_matches(_CODE), "a code (no leading, trailing or repeated whitespace)"),
    "id": (_matches(_ID), "an id ([A-Za-z0-9-.], 1–255 characters)"),
    "uri": (_text, "a JSON string (uri)"),
    "url": (_text, "a JSON string (url)"),
    "canonical": (_text, "a JSON string (canonical)"),
    "markdown": (_text, "a JSON string (markdown)"),
    "xhtml": (_text, "a JSON string (xhtml)"),
    "oid": (_matches(_OID), "an oid (urn:oid:…)"),
    "uuid": (_matches(_UUID4), "a version 4 uuid"),
    "base64Binary": (lambda value: type(value) is str and _base64(value), "base64 (RFC 4648)"),
    "date": (_calendar(_DATE), "a date (YYYY, YYYY-MM or YYYY-MM-DD)"),
    "dateTime": (_calendar(_DATETIME), "a dateTime (a date, or YYYY-MM-DDThh:mm:ss with a time zone)"),
    "instant": (_calendar(_INSTANT), "an instant (YYYY-MM-DDThh:mm:ss with a time zone)"),
    "time": (_matches(_TIME_ONLY), "a time (hh:mm:ss)"),
}


# ---------------------------------------------------------------------------------------------------------
# The checker: closures per element, tables per type, compiled on first use
# ---------------------------------------------------------------------------------------------------------


class _Invalid(Exception):
    """The first problem found; the path is collected (innermost first) while the stack unwinds."""

    def __init__(self, reason: str, *path):
        super().__init__(reason)
        self.reason = reason
        self.path = list(path)


# How an element is checked. The hot kinds are tested inline in _Type.check (a function call per element
# would cost more than the test itself); nulls never get here: pydantic takes null for any element.
_TEXT = 0  # uri, url, canonical, markdown, xhtml: any JSON string
_STRING = 1  # string
_PATTERN = 2  # code, id, oid, time: arg is the regex's fullmatch
_PRIMITIVE = 3  # arg: the accepts function
_COMPLEX = 4  # arg: the _Type
_COMPLEX_ARRAY = 5  # arg: the _Type; null items are not allowed
_PRIMITIVE_ARRAY = 6  # arg: the accepts function; null items line values up with their _element extension
_OTHER = 7  # arg: a function that raises _Invalid (resources, _element arrays, fhir_comments)
_TEXT_TYPES = frozenset({"uri", "url", "canonical", "markdown", "xhtml"})
_PATTERNS = {"code": _CODE.fullmatch, "id": _ID.fullmatch, "oid": _OID.fullmatch, "time": _TIME_ONLY.fullmatch}
_STRING_SEARCH = _STRING_CHAR.search


class _Type:
    """One FHIR type's table: JSON key → (kind, arg, reason), plus its required elements and choice groups."""

    __slots__ = ("choice_of", "choices", "elements", "name", "null_rejected", "one_of_required", "required",
                 "required_values", "spec")

    def __init__(self, name: str, spec: dict):
        self.name, self.spec, self.elements = name, spec, None

    def compile(self) -> dict:
        spec = self.spec
        elements = {}
        for key, type_spec in spec["elements"].items():
            many = type_spec.endswith("[]")
            type_name = type_spec[:-2] if many else type_spec
            if type_name in PRIMITIVES:
                accepts, expected = PRIMITIVES[type_name]
                if many:
                    elements[key] = (_PRIMITIVE_ARRAY, accepts, f"expected {expected}")
                elif type_name in _TEXT_TYPES or type_name == "string":
                    elements[key] = (_TEXT if type_name != "string" else _STRING, None, f"expected {expected}")
                elif type_name in _PATTERNS:
                    elements[key] = (_PATTERN, _PATTERNS[type_name], f"expected {expected}")
                else:
                    elements[key] = (_PRIMITIVE, accepts, f"expected {expected}")
            elif type_name == ANY_RESOURCE:
                elements[key] = (_OTHER, _array(_any_resource) if many else _any_resource, "")
            elif type_name == PRIMITIVE_EXTENSION and many:
                elements[key] = (_OTHER, _array(_complex(type_name), null_items=True), "")
            else:
                target = _types()[type_name]
                elements[key] = (_COMPLEX_ARRAY if many else _COMPLEX, target, f"expected a {type_name} object")
        elements["fhir_comments"] = (_OTHER, _fhir_comments, "")
        self.choice_of = {key: prefix for prefix, _, keys in spec["choices"] for key in keys}
        self.choices = [prefix for prefix, required, _ in spec["choices"] if required]
        self.required = spec["required"]
        self.required_values = spec["required_values"]
        self.one_of_required = spec.get("one_of_required")
        self.null_rejected = frozenset(spec["null_rejected"])
        self.elements = elements
        return elements

    def check(self, obj: dict) -> None:
        elements = self.elements or self.compile()
        for key, value in obj.items():
            entry = elements.get(key)
            if entry is None:
                if key == "resourceType" and value == self.name:
                    continue
                raise _Invalid("unknown element", key)
            if value is None:
                if key in self.null_rejected:
                    raise _Invalid("expected an array, not null", key)
                continue
            kind, arg, reason = entry
            try:
                if kind == _TEXT:
                    if type(value) is not str:
                        raise _Invalid(_shape(value, reason))
                elif kind == _STRING:
                    if type(value) is not str or not value or (value.isspace() and _STRING_SEARCH(value) is None):
                        raise _Invalid(_shape(value, reason))
                elif kind == _PATTERN:
                    if type(value) is not str or arg(value) is None:
                        raise _Invalid(_shape(value, reason))
                elif kind == _PRIMITIVE:
                    if not arg(value):
                        raise _Invalid(_shape(value, reason))
                elif kind == _COMPLEX:
                    if type(value) is not dict:
                        raise _Invalid(_shape(value, reason))
                    arg.check(value)
                elif kind == _COMPLEX_ARRAY:
                    if type(value) is not list:
                        raise _Invalid("expected an array")
                    for item in value:
                        if type(item) is not dict:
                            raise _Invalid(reason if item is not None else "null in an array of objects",
                                           _index_of(value, item))
                        try:
                            arg.check(item)
                        except _Invalid as exc:
                            exc.path.append(_index_of(value, item))
                            raise
                elif kind == _PRIMITIVE_ARRAY:
                    if type(value) is not list:
                        raise _Invalid("expected an array")
                    for item in value:
                        if item is not None and not arg(item):
                            raise _Invalid(reason, _index_of(value, item))
                else:
                    arg(value)
            except _Invalid as exc:
                exc.path.append(key)
                raise
        if self.choice_of:
            self._check_choices(obj)
        for key in self.required:
            if key not in obj:
                raise _Invalid("required element missing", key)
        for key, ext in self.required_values:
            if obj.get(key) is None and not _has_extension(obj.get(ext) if ext else None):
                raise _Invalid("required element missing", key)
        if self.one_of_required and all(obj.get(key) is None for key in self.one_of_required):
            raise _Invalid("an _element object needs an id, an extension or fhir_comments")

    def _check_choices(self, obj: dict) -> None:
        choice_of, seen = self.choice_of, {}
        for key, value in obj.items():
            prefix = choice_of.get(key)
            if prefix is not None and value is not None:
                if prefix in seen:
                    raise _Invalid(f"more than one type given ({seen[prefix]}, {key})", f"{prefix}[x]")
                seen[prefix] = key
        for prefix in self.choices:
            if prefix not in seen:
                raise _Invalid("required element missing", f"{prefix}[x]")


def _shape(value, reason: str) -> str:
    return "expected a single value, not an array" if type(value) is list else reason


def _index_of(items: list, item) -> int:
    return next(i for i, x in enumerate(items) if x is item)


def _array(check_item: Callable[[object], None], null_items: bool = False) -> Callable[[object], None]:
    def check(value):
        if type(value) is not list:
            raise _Invalid("expected an array")
        for item in value:
            if item is None and null_items:
                continue
            try:
                check_item(item)
            except _Invalid as exc:
                exc.path.append(_index_of(value, item))
                raise
    return check


def _complex(type_name: str) -> Callable[[object], None]:
    target = _types()[type_name]

    def check(value):
        if type(value) is not dict:
            raise _Invalid(_shape(value, f"expected a {type_name} object"))
        target.check(value)
    return check


def _any_resource(value) -> None:
    if type(value) is not dict:
        raise _Invalid(_shape(value, "expected a resource object"))
    resource_type = value.get("resourceType", ANY_RESOURCE)
    target = _resource_types().get(resource_type) if type(resource_type) is str else None
    if target is None:
        raise _Invalid("not a known FHIR resourceType")
    target.check(value)


def _has_extension(ext) -> bool:
    return type(ext) is dict and bool(ext.get("extension"))


def _fhir_comments(value) -> None:
    if not (type(value) is str or (type(value) is list and all(type(v) is str for v in value))):
        raise _Invalid("expected a string or an array of strings")


@functools.cache
def _types() -> dict[str, _Type]:
    return {name: _Type(name, spec) for name, spec in load_schema()["types"].items()}


@functools.cache
def _resource_types() -> dict[str, _Type]:
    return {name: t for name, t in _types().items() if t.spec["resource"]}


def structure_problem(resource: object) -> str | None:
    """Why `resource` (the parsed JSON of one resource) is not valid FHIR R4 structure, or None.
    Only the first problem is named: ``path.to.element: what was expected``. Most resources are accepted by
    the compiled check (structure_compiled.accepts: never where walk_problem would find a problem) once a
    large batch has built it (warm_up); the rest are walked, which gives the verdict and message of record."""
    if structure_compiled.built() and structure_compiled.accepts(resource):
        return None
    return walk_problem(resource)


def walk_problem(resource: object) -> str | None:
    """structure_problem by the Python walk alone (the compiled check's tests compare the two)."""
    resource_type = resource.get("resourceType") if type(resource) is dict else None
    target = _resource_types().get(resource_type) if type(resource_type) is str else None
    if target is None:
        return NO_RESOURCE
    try:
        target.check(resource)
    except _Invalid as exc:
        return ".".join(str(p) for p in reversed(exc.path)) + ": " + exc.reason
    except RecursionError:  # the reader caps nesting at 254 levels, far below this; a verdict all the same
        return "nested too deep to check"
    return None


def warm_up(compiled: bool = True) -> None:
    """Compile every type now (before forking workers, so each inherits them), and with `compiled` the compiled
    check's types, which only a batch of structure_compiled.WORTH_BUILDING resources or more repays."""
    for t in _types().values():
        t.elements or t.compile()
    if compiled:
        structure_compiled.enable()


# Last: structure_compiled reads this module's patterns when it is imported.
from pipelines.fhir import structure_compiled
