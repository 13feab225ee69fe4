"""FHIR element cardinalities and types, read from the fhir.resources R4B models, for the view compiler.

FHIR JSON fixes every element's shape: an element whose maximum cardinality is above one is always an
array, any other never is. Knowing this lets the compiler parse a resource once into typed structs
(``json_transform``) instead of probing every step for "array, object or scalar?" at query time — the
probing is what made generic compiled views several times slower than hand-written SQL.

``element(type_name, name)`` answers for one element; ``None`` means "not a known element" (unknown type,
a typo, an R5-only element, or a choice element named without its type such as ``value``) and the
compiler then falls back to its shape-agnostic JSON code for that step.
"""

from __future__ import annotations

import functools
import types
import typing
from dataclasses import dataclass

__all__ = ["TEXT_PRIMITIVES", "Element", "element"]

#: Primitive types whose JSON form is always a string: the compiler reads them as VARCHAR directly.
TEXT_PRIMITIVES = frozenset({
    "string", "code", "id", "uri", "url", "canonical", "oid", "uuid", "markdown", "base64Binary", "date",
    "dateTime", "instant", "time", "xhtml",
})


@dataclass(frozen=True)
class Element:
    name: str  # the JSON key
    many: bool  # a JSON array (max cardinality above one)
    kind: str  # primitive | complex | resource (a contained / inline resource of any type)
    type_name: str | None = None  # CodeableConcept, ObservationComponent, ...; for primitives code, dateTime, ...


@functools.cache
def _model(type_name: str):
    try:
        from fhir.resources.R4B import get_fhir_model_class
    except ImportError:  # pragma: no cover - fhir.resources is a locked dependency
        return None
    try:
        return get_fhir_model_class(type_name)
    except (KeyError, ValueError, AttributeError, ImportError):
        return None


@functools.cache
def _elements(type_name: str) -> dict[str, Element]:
    model = _model(type_name)
    if model is None:
        return {}
    found: dict[str, Element] = {}
    for field in model.model_fields.values():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if not extra.get("element_property"):
            continue
        name = field.alias or ""
        if not name:
            continue
        many, inner = unwrap_annotation(field.annotation)
        found[name] = _classify(name, many, inner)
    return found


def element(type_name: str | None, name: str) -> Element | None:
    """The element ``name`` of FHIR type ``type_name`` (a resource, data type or backbone element)."""
    if not type_name:
        return None
    return _elements(type_name).get(name)


def unwrap_annotation(annotation) -> tuple[bool, object]:
    """(is a list, the item annotation) with Optional/Union-with-None removed."""
    many = False
    while True:
        origin = typing.get_origin(annotation)
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin in (typing.Union, types.UnionType) and len(args) == 1:
            annotation = args[0]
        elif origin in (list, typing.List):  # noqa: UP006 - matching the models' own annotations
            many, annotation = True, args[0]
        else:
            return many, annotation


def _classify(name: str, many: bool, inner: object) -> Element:
    type_name = getattr(inner, "__name__", "")
    # Model fields refer to complex types through abstract "<Type>Type" markers (abc.CodeableConceptType).
    if type_name.endswith("Type") and getattr(inner, "__module__", "") == "abc":
        target = type_name[: -len("Type")]
        if target == "Resource":  # contained, Bundle.entry.resource, Parameters.parameter.resource
            return Element(name, many, "resource")
        if _model(target) is not None:
            return Element(name, many, "complex", target)
    return Element(name, many, "primitive", _primitive_name(inner))


def _primitive_name(annotation) -> str | None:
    """code, dateTime, boolean, ... from the model's annotation (Annotated[str, Code()], bool, ...)."""
    if annotation is bool:
        return "boolean"
    for meta in getattr(annotation, "__metadata__", ()):
        name = type(meta).__name__
        if name:
            return name[:1].lower() + name[1:]
    return None
