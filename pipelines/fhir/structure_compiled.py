"""A compiled fast-accept in front of the Python structure check (pipelines/fhir/structure_schema.py): the
committed schema turned into msgspec Struct types, one per FHIR type, that a parsed resource is converted to.

``accepts(resource)`` is True only if the Python check would find nothing wrong: the types are at least as
strict as the Python check everywhere, and stricter wherever msgspec cannot say what the Python check says.
False means "not known here": the caller asks the Python check, whose verdict and message are the ones of
record. So the compiled types may refuse more, never accept more:

- every element is typed (nested types, arrays exactly where the maximum cardinality is above one, JSON
  boolean / number / string read strictly: no bool for an integer, no 5.0 for an integer), no unknown key
  (``forbid_unknown_fields``), ``resourceType`` only on resources (the Python check also lets a complex type
  carry its own name: stricter);
- ``null`` is refused everywhere but inside primitive arrays and ``_element`` arrays (where the Python check
  takes it too); the Python check takes it for any single element: stricter;
- required elements have no default; a required primitive must have its value (the Python check also takes
  an extension in its ``_element`` sibling: stricter);
- choice groups (``value[x]``) and the ``_element`` object's "an id, an extension or fhir_comments" are
  checked in ``__post_init__``, only on the types that have them;
- integer ranges are ``msgspec.Meta`` bounds; the string formats are the Python check's own regexes, run by
  `_check_text` (msgspec's dec_hook for one custom type per format), except: a ``string`` must not be all
  whitespace (the Python check also takes " "), a ``base64Binary`` must be canonical base64 (the Python check
  takes whatever ``b64decode`` takes), and a full date may not be February 29 (the Python check knows leap
  years) — each stricter;
- a resource in ``contained`` or ``Bundle.entry.resource`` is chosen by its ``resourceType`` among the
  resource types (one tagged union); one without ``resourceType`` is refused (the Python check reads it as a
  plain Resource: stricter).

The input is parsed JSON (dict, list, str, int, float, bool, None), as orjson makes it: msgspec would also
take a tuple for an array, which JSON cannot produce.
"""

from __future__ import annotations

import functools
import keyword
import re
import typing

import msgspec
from msgspec import UNSET, Meta, UnsetType

from pipelines.fhir import structure_schema as schema

__all__ = ["WORTH_BUILDING", "accepts", "built", "compiled_types"]

# Namespaces the Struct annotations are evaluated in (msgspec resolves them, lazily, in this module's globals):
# the Struct per FHIR type ("*": the union of all resource types) and the type of each primitive.
_T: dict[str, object] = {}
_P: dict[str, object] = {}


# A full date whose day exists in every year: February 29 is left to the Python check, which knows leap years.
_MONTH = "(?:0[1-9]|1[0-2])"
_MONTH_DAY = ("(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
              "|(?:0[13578]|1[02])-31)")
_DATE_TIME_TAIL = f"T{schema._TIME}{schema._ZONE}"
_BASE64 = "(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"  # canonical: b64decode takes it
_INT32 = 2**31 - 1


def _fullmatch(pattern: str) -> typing.Callable[[str], object]:
    return re.compile(pattern).fullmatch


#: FHIR primitive → the msgspec type of its JSON value, checked in C (as strict as structure_schema.PRIMITIVES)
NATIVE_TYPES: dict[str, object] = {
    "boolean": bool,
    "integer": typing.Annotated[int, Meta(ge=-_INT32 - 1, le=_INT32)],
    "unsignedInt": typing.Annotated[int, Meta(ge=0, le=_INT32)],
    "positiveInt": typing.Annotated[int, Meta(ge=1, le=_INT32)],
    "decimal": float,  # msgspec's float takes a JSON integer too, not a bool: as the Python check
    **{name: str for name in ("uri", "url", "canonical", "markdown", "xhtml")},
}
#: FHIR string primitive with a format → a function of the value, truthy when it is good (each at least as
#: strict as structure_schema.PRIMITIVES); `string` has none: _check_text tests it inline
TEXT_FORMATS: dict[str, typing.Callable[[str], object] | None] = {
    "string": None,
    "code": schema._CODE.fullmatch,
    "id": schema._ID.fullmatch,
    "oid": schema._OID.fullmatch,
    "uuid": schema._UUID4.fullmatch,
    "time": schema._TIME_ONLY.fullmatch,
    "base64Binary": _fullmatch(_BASE64),
    "date": _fullmatch(f"{schema._YEAR}(?:-{_MONTH_DAY}|-{_MONTH})?"),
    "dateTime": _fullmatch(f"{schema._YEAR}(?:-{_MONTH_DAY}(?:{_DATE_TIME_TAIL})?|-{_MONTH})?"),
    "instant": _fullmatch(f"{schema._YEAR}-{_MONTH_DAY}{_DATE_TIME_TAIL}"),
}


class _Text:
    """A string primitive with a format (one subclass per primitive): msgspec hands each such value to
    `_check_text`, its dec_hook. A ``Meta(pattern=...)`` would cost ~300 ns per value whatever the value
    (~26 per resource: more than the rest of the conversion); the hook skips the regex for values seen before
    (docs/structure.md has the measurements)."""

    matches: typing.ClassVar[typing.Callable[[str], object]]
    good: typing.ClassVar[object]  # what the Struct holds for a good value: one shared instance, never read
    #: values already matched, so a repeated code or date costs a set lookup, not a regex; never for `string`
    #: (names, identifier values: not kept beyond their resource) and at most SEEN_LIMIT per primitive
    seen: typing.ClassVar[set[str] | None]


SEEN_LIMIT = 20_000


def _check_text(kind: type, value: object) -> object:
    if type(value) is str:
        seen = kind.seen
        if seen is None:  # `string`: not blank (isspace() is false as soon as one character is not whitespace)
            if value and not value.isspace():
                return kind.good
        elif value in seen:
            return kind.good
        elif kind.matches(value) is not None:
            if len(seen) < SEEN_LIMIT:
                seen.add(value)
            return kind.good
    raise ValueError(f"not a FHIR {kind.__name__}")


def _text_type(name: str, matches) -> type:
    kind = type(name, (_Text,), {"matches": staticmethod(matches), "__module__": __name__,
                                 "seen": None if name == "string" else set()})
    kind.good = kind()
    return kind


def _attr(key: str) -> str:
    """A Python attribute name for a JSON key (the Struct renames it back)."""
    if key.startswith("_"):
        return "ext_" + key[1:]  # FHIR element names are camelCase: no clash
    return key + "_" if keyword.iskeyword(key) else key


def _annotation(type_spec: str) -> str:
    many = type_spec.endswith("[]")
    name = type_spec[:-2] if many else type_spec
    if name == schema.ANY_RESOURCE:
        inner = f"_T[{'*'!r}]"
    elif name in schema.PRIMITIVES:
        # the Python check takes null items in primitive arrays (they line values up with their extensions)
        inner = f"_P[{name!r}] | None" if many else f"_P[{name!r}]"
    elif name == schema.PRIMITIVE_EXTENSION and many:
        inner = f"_T[{name!r}] | None"
    else:
        inner = f"_T[{name!r}]"
    return f"list[{inner}]" if many else inner


@functools.cache
def _ref(annotation: str) -> typing.ForwardRef:
    # one ForwardRef per distinct annotation (~1,000 for 11,600 fields): each compiles its text once
    return typing.ForwardRef(annotation, is_argument=False, is_class=True)


def _choice_check(groups: list[tuple[range, bool]], fields: int, required: int, any_required: bool):
    """__post_init__ for a type with choice groups: of each group's fields (positions in the Struct) at most
    one is given, exactly one if the group is required. Null is refused, so a field is given exactly when it
    is not UNSET, and the `required` fields (no default) always are. `groups` is filled once the Struct exists
    (its field order is msgspec's)."""
    astuple = msgspec.structs.astuple

    def __post_init__(self):
        values = astuple(self)
        # most Extensions: url and one value, nothing else: no group can hold two (one count, in C)
        if not any_required and fields - values.count(UNSET) - required <= 1:
            return
        for positions, is_required in groups:
            given = len(positions) - values[positions.start:positions.stop].count(UNSET)
            if given > 1 or (is_required and given == 0):
                raise ValueError("choice")
    return __post_init__


def _one_of_required(attrs: list[str]):
    def __post_init__(self):
        if all(getattr(self, attr) is UNSET for attr in attrs):
            raise ValueError("needs one of " + ", ".join(attrs))
    return __post_init__


def _define(name: str, spec: dict) -> type:
    required = set(spec["required"]) | {key for key, _ in spec["required_values"]}
    in_choice = [key for _, _, keys in spec["choices"] for key in keys]
    if required & set(in_choice):
        raise RuntimeError(f"{name}: a required element is part of a choice group")
    keys = [key for key in spec["elements"] if key not in set(in_choice)] + in_choice
    fields, rename = [], {}
    for key in keys:
        attr = _attr(key)
        if attr != key:
            rename[attr] = key
        annotation = _annotation(spec["elements"][key])
        fields.append((attr, _ref(annotation)) if key in required
                      else (attr, _ref(annotation + " | UnsetType"), UNSET))
    fields.append(("fhir_comments", str | list[str] | UnsetType, UNSET))
    namespace, groups = {}, []
    if spec["choices"]:
        namespace["__post_init__"] = _choice_check(groups, len(fields), sum(len(f) == 2 for f in fields),
                                                   any(is_required for _, is_required, _ in spec["choices"]))
    if spec.get("one_of_required"):
        if spec["choices"]:
            raise RuntimeError(f"{name}: both choice groups and one_of_required")
        namespace["__post_init__"] = _one_of_required([_attr(key) for key in spec["one_of_required"]])
    tag = {"tag_field": "resourceType", "tag": name} if spec["resource"] else {}
    struct = msgspec.defstruct(name, fields, module=__name__, namespace=namespace, rename=rename or None,
                               kw_only=True, forbid_unknown_fields=True, gc=False, **tag)
    order = {attr: i for i, attr in enumerate(struct.__struct_fields__)}
    for _, is_required, group in spec["choices"]:
        positions = sorted(order[_attr(key)] for key in group)
        if positions != list(range(positions[0], positions[-1] + 1)):
            raise RuntimeError(f"{name}: the fields of a choice group are not adjacent")
        groups.append((range(positions[0], positions[-1] + 1), is_required))
    return struct


#: compiled_types() once built (None until then)
_RESOURCES: dict[str, type] | None = None


def compiled_types() -> dict[str, type]:
    """resourceType → its Struct; every FHIR type of the schema defined and resolved by msgspec (once per
    process, ~0.14 CPU-s; warm_up() does it before workers fork)."""
    global _RESOURCES
    if _RESOURCES is not None:
        return _RESOURCES
    types = schema.load_schema()["types"]
    if set(schema.PRIMITIVES) != set(NATIVE_TYPES) | set(TEXT_FORMATS):
        raise RuntimeError("the compiled primitives are not the Python check's (structure_schema.PRIMITIVES)")
    _P.update(NATIVE_TYPES)
    _P.update({name: _text_type(name, matches) for name, matches in TEXT_FORMATS.items()})
    _T.update({name: _define(name, spec) for name, spec in types.items()})
    resources = {name: _T[name] for name, spec in types.items() if spec["resource"]}
    _T["*"] = typing.Union[tuple(resources.values())]  # noqa: UP007 (a union made from a tuple)
    try:  # msgspec resolves the annotations at first use: every type at once, through the resource union
        msgspec.convert({"resourceType": "Bundle"}, _T["*"], dec_hook=_check_text)
    except msgspec.ValidationError:  # Bundle.type is missing: the conversion only had to resolve the types
        pass
    _RESOURCES = resources
    return resources


#: resources a batch needs for building the types (~0.14 CPU-s) to pay: the compiled check saves ~10 µs each
WORTH_BUILDING = 15_000


def built() -> bool:
    """Whether this process has built the types (compiled_types): structure_problem uses the compiled check
    once a batch of WORTH_BUILDING resources or more built it (structure_schema.warm_up)."""
    return _RESOURCES is not None


def accepts(resource: object) -> bool:
    """True if `resource` (parsed JSON) is valid base FHIR structure by the compiled types; then the Python
    check (structure_schema.structure_problem's walk) finds no problem either. False: ask the Python check."""
    if type(resource) is not dict:
        return False
    resource_type = resource.get("resourceType")
    target = compiled_types().get(resource_type) if type(resource_type) is str else None
    if target is None:
        return False
    try:
        msgspec.convert(resource, target, dec_hook=_check_text)
    except (msgspec.ValidationError, RecursionError):
        return False
    return True
