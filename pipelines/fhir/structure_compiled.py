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
- a resource in ``contained`` or ``Bundle.entry.resource`` is converted to its own ``resourceType``'s Struct
  (`_AnyResource`, through the dec_hook); one without ``resourceType`` is refused (the Python check reads it as
  a plain Resource: stricter).

The Structs are built per resource type, when a resource of that type is first checked: a type and what it
reaches (its backbone elements, the data types). Building all 682 types cost 0.10–0.18 s per process, more than
a 16 × increment's 8,000 resources save with it; the 17 resource types JP-CLINS data carries (`WARM_TYPES`)
reach 109 of them.

The input is parsed JSON (dict, list, str, int, float, bool, None), as orjson makes it: msgspec would also
take a tuple for an array, which JSON cannot produce.
"""

from __future__ import annotations

import functools
import keyword
import re
import threading
import typing

import msgspec
from msgspec import UNSET, Meta, UnsetType

from pipelines.fhir import structure_schema as schema

__all__ = ["WARM_TYPES", "WORTH_BUILDING", "accepts", "built", "compiled_types", "enable"]

# Namespaces the Struct annotations are evaluated in (msgspec resolves them, lazily, in this module's globals):
# the Struct per FHIR type built so far and the type of each primitive.
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


class _AnyResource:
    """A resource inside another (``contained``, ``Bundle.entry.resource``): msgspec hands it to `_check_text`,
    which converts it to its own type's Struct, built then if need be."""

    good: typing.ClassVar[object]
    # a string where a resource belongs goes through the text branch of `_check_text`, and fails there
    seen: typing.ClassVar[frozenset] = frozenset()
    matches = staticmethod(lambda value: None)


def _check_text(kind: type, value: object) -> object:
    """msgspec's dec_hook: the value of a `_Text` type if good, a nested resource (`_AnyResource`) if it converts."""
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
    elif kind is _AnyResource and _converts(value):  # after the strings: they are nearly every call
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
        inner = "_AnyResource"
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


#: the resource types JP-CLINS documents and feeds carry (docs/domain_spec.md): `enable` builds them at once, so
#: forked workers inherit them; any other type is built where it is first met
WARM_TYPES = ("Bundle", "Patient", "Observation", "Condition", "AllergyIntolerance", "MedicationRequest",
              "Medication", "Composition", "Encounter", "Organization", "Practitioner", "PractitionerRole",
              "Coverage", "DocumentReference", "Consent", "AuditEvent", "Specimen")
#: resource type → its Struct, for the types built so far
_RESOURCES: dict[str, type] = {}
_enabled = False
_building = threading.Lock()


def _resource_struct(resource_type: str) -> type | None:
    """The Struct of a resource type (None for a name that is not one), built with what it reaches the first time."""
    struct = _RESOURCES.get(resource_type)
    if struct is not None:
        return struct
    types = schema.load_schema()["types"]
    spec = types.get(resource_type)
    if spec is None or not spec["resource"]:
        return None
    with _building:  # two threads may meet a new type at once; the second finds it built
        if resource_type not in _RESOURCES:
            _define_reachable(resource_type, types)
            struct = _T[resource_type]
            try:  # msgspec resolves the annotations at a type's first conversion: now, so forked workers inherit them
                msgspec.convert({"resourceType": resource_type}, struct, dec_hook=_check_text)
            except msgspec.ValidationError:  # a required element is missing: only the resolving mattered
                pass
            _RESOURCES[resource_type] = struct
    return _RESOURCES[resource_type]


def _define_reachable(name: str, types: dict) -> None:
    """Define `name` and every complex type its elements reach that is not defined yet. A nested resource is an
    `_AnyResource`, so no other resource type is reached. msgspec resolves the annotations at the first
    conversion, when every name they use is in _T."""
    if not _P:
        if set(schema.PRIMITIVES) != set(NATIVE_TYPES) | set(TEXT_FORMATS):
            raise RuntimeError("the compiled primitives are not the Python check's (structure_schema.PRIMITIVES)")
        _P.update(NATIVE_TYPES)
        _P.update({kind: _text_type(kind, matches) for kind, matches in TEXT_FORMATS.items()})
        _AnyResource.good = _AnyResource()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in _T:
            continue
        spec = types[current]
        _T[current] = _define(current, spec)
        for type_spec in spec["elements"].values():
            element = type_spec.removesuffix("[]")
            if element in types and element not in _T and element != schema.ANY_RESOURCE:
                todo.append(element)


def enable(resource_types: typing.Iterable[str] = WARM_TYPES) -> None:
    """Use the compiled check in this process from now on (`built`), with the Structs of `resource_types` built now
    (~0.012 CPU-s for WARM_TYPES) and any other resource type's when one is first checked."""
    global _enabled
    for resource_type in resource_types:
        _resource_struct(resource_type)
    _enabled = True


def compiled_types() -> dict[str, type]:
    """resourceType → its Struct, for the resource types built so far (enable(); accepts() builds more)."""
    return dict(_RESOURCES)


#: resources a batch needs for enabling the compiled check to pay: building WARM_TYPES' Structs costs ~0.012 CPU-s,
#: and the check saves ~7 µs a resource against the Python walk (16 → 9 µs on a 16 × increment's 8,083 resources)
WORTH_BUILDING = 2_000


def built() -> bool:
    """Whether this process uses the compiled check (enable(): a batch of WORTH_BUILDING resources or more, or
    structure_schema.warm_up before a pool forks)."""
    return _enabled


def accepts(resource: object) -> bool:
    """True if `resource` (parsed JSON) is valid base FHIR structure by the compiled types; then the Python
    check (structure_schema.structure_problem's walk) finds no problem either. False: ask the Python check."""
    return _converts(resource)


def _converts(resource: object) -> bool:
    """Whether `resource` converts to its own resourceType's Struct (a dict with a known resourceType)."""
    resource_type = resource.get("resourceType") if type(resource) is dict else None
    target = _resource_struct(resource_type) if type(resource_type) is str else None
    if target is None:
        return False
    try:
        msgspec.convert(resource, target, dec_hook=_check_text)
    except (msgspec.ValidationError, RecursionError):
        return False
    return True
