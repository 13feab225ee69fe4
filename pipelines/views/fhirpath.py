"""The SQL on FHIR v2 FHIRPath subset, compiled to DuckDB SQL expressions.

Representation at query time:

* a FHIRPath *collection* is a DuckDB ``JSON[]`` list. Navigation flattens arrays, because in FHIR
  JSON an element may be a scalar, an object or an array, and ``name.given`` means every given of
  every name;
* a value known to hold *at most one* item (``first()``, a literal, ``exists()``...) stays a plain
  SQL scalar where SQL NULL means "empty". This keeps the SQL small and lets DuckDB compare typed
  values directly.

Everything here only writes SQL text; nothing runs per resource in Python. Lambdas use DuckDB's
``lambda x: ...`` syntax (the arrow form is deprecated from DuckDB 1.3 on).

Typed navigation (the fast path). Where a path walks FHIR elements the R4B model knows
(pipelines/views/fhir_model.py), the resource is parsed once, by ``json_transform`` with a schema built
from the view's own paths, into ``__typed``: complex elements that are only navigated become STRUCTs,
arrays stay arrays (FHIR fixes which elements are), text primitives become VARCHAR and other primitives
JSON leaves. Such values carry the ``PathNode`` they came from and their SQL in that representation
(``Val.nav``). Any other use of a STRUCT-shaped value needs its JSON text, which the schema did not keep:
its ``Val.sql`` is a marker, and a view whose SQL still contains a marker is compiled again with that
element fetched as JSON (compiler.py repeats until none is left). Unknown elements take the
shape-agnostic JSON path above. A ``repeat`` over an element that contains itself (Composition.section,
QuestionnaireResponse.item) is unrolled in that schema to the compiler's depth limit, and each item, at
whatever level, is read as a STRUCT of the children the view navigates (``Env.repeat_item``). The price:
a resource whose JSON breaks FHIR's cardinalities (an array element sent as a single object) reads as empty
there instead of being coerced — such a record already fails the structure check (fhir.resources) and is
quarantined.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal

from .fhir_model import TEXT_PRIMITIVES, Element, element

__all__ = ["Env", "FhirPath", "FhirPathError", "PathNode", "Scope", "Val", "parse", "sql_str"]


class FhirPathError(Exception):
    """An expression outside the supported subset, or a malformed one."""


# --------------------------------------------------------------------------------------------------
# FHIR type knowledge (no schema is loaded: these small lists are what the subset needs)
# --------------------------------------------------------------------------------------------------

# fmt: off
#: FHIR data types (R4 open types, a few R5 additions, and other non-resource types). For these,
#: ``x.ofType(T)`` selects the choice element ``xT``; any other capitalised name is taken as a
#: resource type and checked against ``resourceType``.
DATA_TYPES = frozenset({
    "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id", "instant",
    "integer", "integer64", "markdown", "oid", "positiveInt", "string", "time", "unsignedInt",
    "uri", "url", "uuid", "Address", "Age", "Annotation", "Attachment", "CodeableConcept",
    "CodeableReference", "Coding", "ContactPoint", "Count", "Distance", "Duration", "HumanName",
    "Identifier", "Money", "Period", "Quantity", "Range", "Ratio", "RatioRange", "Reference",
    "SampledData", "Signature", "Timing", "ContactDetail", "Contributor", "DataRequirement",
    "Expression", "ParameterDefinition", "RelatedArtifact", "TriggerDefinition", "UsageContext",
    "Dosage", "Meta", "Element", "BackboneElement", "Extension", "Narrative", "SimpleQuantity",
    "MoneyQuantity", "xhtml", "ElementDefinition", "MarketingStatus", "Population",
    "ProdCharacteristic", "ProductShelfLife", "SubstanceAmount", "Availability",
    "ExtendedContactDetail",
})

#: Choice elements that a path may name without ``ofType()`` (``Observation.value``). Only these
#: names pay for the fallback lookup of a ``name<Type>`` key when the plain key is absent.
CHOICE_ELEMENTS = frozenset(
    {
        "value", "effective", "onset", "abatement", "deceased", "multipleBirth", "occurrence",
        "performed", "timing", "serviced", "born", "age", "medication", "reported", "asNeeded",
        "defaultValue", "answer", "initial", "collected", "allowed", "used", "fixed", "pattern",
        "minValue", "maxValue",
    }
)

# fmt: on

_JSON_NUMBER_TYPES = "('BIGINT', 'UBIGINT', 'DOUBLE')"

#: JSON types that satisfy ``ofType(<primitive>)`` when no choice key can be used.
_PRIMITIVE_JSON_TYPES = {
    "boolean": "('BOOLEAN')",
    "integer": "('BIGINT', 'UBIGINT')",
    "integer64": "('BIGINT', 'UBIGINT')",
    "positiveInt": "('BIGINT', 'UBIGINT')",
    "unsignedInt": "('BIGINT', 'UBIGINT')",
    "decimal": _JSON_NUMBER_TYPES,
}

#: SQL scalar type of a FHIR primitive when it leaves JSON (VARCHAR for all the text-like ones).
SQL_TYPE_OF_FHIR = {
    "boolean": "BOOLEAN",
    "integer": "BIGINT",
    "integer64": "BIGINT",
    "positiveInt": "BIGINT",
    "unsignedInt": "BIGINT",
    "decimal": "DOUBLE",
}


def sql_str(text: str) -> str:
    """A SQL string literal. DuckDB keeps every character (Japanese included) as is, except that NUL
    would end the literal, so it is spliced in with chr(0)."""
    quoted = "'" + text.replace("'", "''") + "'"
    return quoted if "\x00" not in text else "(" + quoted.replace("\x00", "' || chr(0) || '") + ")"


def _json_path(name: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return f"$.{name}"
    if '"' in name or "\\" in name:
        raise FhirPathError(f"unsupported element name {name!r}")
    return f'$."{name}"'


def _capitalised(type_name: str) -> str:
    return type_name[:1].upper() + type_name[1:]


# --------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
      (?P<space>\s+|//[^\n]*|/\*.*?\*/)
    | (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<number>\d+(?:\.\d+)?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<delimited>`(?:[^`\\]|\\.)*`)
    | (?P<variable>%(?:[A-Za-z_][A-Za-z0-9_]*|`(?:[^`\\]|\\.)*`))
    | (?P<special>\$[A-Za-z]+)
    | (?P<op><=|>=|!=|!~|[-+*/&|=<>~(),.\[\]{}])
    """,
    re.VERBOSE | re.DOTALL,
)

_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


@dataclass(frozen=True)
class Token:
    kind: str  # string | number | ident | delimited | variable | special | op | end
    text: str
    pos: int


def _unescape(body: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code.startswith("u"):
            return chr(int(code[1:], 16))
        return _ESCAPES.get(code, code)

    return re.sub(r"\\(u[0-9A-Fa-f]{4}|.)", one, body)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match:
            raise FhirPathError(f"unexpected character {text[pos]!r} at position {pos}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# --------------------------------------------------------------------------------------------------
# Syntax tree and recursive-descent parser
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    value: object
    kind: str  # string | integer | decimal | boolean | empty


@dataclass(frozen=True)
class Member:
    base: Node | None  # None: a member of the current focus ($this)
    name: str


@dataclass(frozen=True)
class Call:
    base: Node | None  # None: invoked on the current focus
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Indexer:
    base: Node
    index: Node


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True)
class Variable:
    name: str  # without the leading %


@dataclass(frozen=True)
class This:
    pass


Node = Literal | Member | Call | Indexer | Binary | Unary | Variable | This

#: Binary operators from the loosest to the tightest binding (FHIRPath §"Operator precedence").
_PRECEDENCE: tuple[tuple[str, ...], ...] = (
    ("implies",),
    ("or", "xor"),
    ("and",),
    ("in", "contains"),
    ("=", "!=", "~", "!~"),
    ("<", ">", "<=", ">="),
    ("|",),
    ("is", "as"),
    ("+", "-", "&"),
    ("*", "/", "div", "mod"),
)


class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.i = 0

    def parse(self) -> Node:
        node = self.binary(0)
        if self.peek().kind != "end":
            raise self.unexpected()
        return node

    # -- helpers
    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at_op(self, *texts: str) -> bool:
        token = self.peek()
        return token.kind in ("op", "ident") and token.text in texts

    def expect(self, text: str) -> None:
        if not (self.peek().kind == "op" and self.peek().text == text):
            raise self.unexpected(f"expected '{text}'")
        self.take()

    def unexpected(self, hint: str = "") -> FhirPathError:
        token = self.peek()
        found = "end of expression" if token.kind == "end" else f"'{token.text}'"
        return FhirPathError(f"unexpected {found} at position {token.pos}" + (f" ({hint})" if hint else ""))

    # -- grammar
    def binary(self, level: int) -> Node:
        if level == len(_PRECEDENCE):
            return self.unary()
        left = self.binary(level + 1)
        while self.at_op(*_PRECEDENCE[level]):
            op = self.take().text
            left = Binary(op, left, self.binary(level + 1))
        return left

    def unary(self) -> Node:
        if self.at_op("+", "-") and self.peek().kind == "op":
            return Unary(self.take().text, self.unary())
        return self.postfix(self.term())

    def postfix(self, node: Node) -> Node:
        while True:
            if self.at_op(".") and self.peek().kind == "op":
                self.take()
                name = self.identifier()
                node = Call(node, name, self.arguments()) if self.at_op("(") else Member(node, name)
            elif self.at_op("[") and self.peek().kind == "op":
                self.take()
                index = self.binary(0)
                self.expect("]")
                node = Indexer(node, index)
            else:
                return node

    def identifier(self) -> str:
        token = self.take()
        if token.kind == "ident":
            return token.text
        if token.kind == "delimited":
            return _unescape(token.text[1:-1])
        self.i -= 1
        raise self.unexpected("expected a name")

    def arguments(self) -> tuple[Node, ...]:
        self.expect("(")
        args: list[Node] = []
        if not self.at_op(")"):
            args.append(self.binary(0))
            while self.at_op(","):
                self.take()
                args.append(self.binary(0))
        self.expect(")")
        return tuple(args)

    def term(self) -> Node:
        token = self.peek()
        if token.kind == "string":
            self.take()
            return Literal(_unescape(token.text[1:-1]), "string")
        if token.kind == "number":
            self.take()
            if "." in token.text:
                return Literal(Decimal(token.text), "decimal")
            return Literal(int(token.text), "integer")
        if token.kind == "ident" and token.text in ("true", "false"):
            self.take()
            return Literal(token.text == "true", "boolean")
        if token.kind in ("ident", "delimited"):
            name = self.identifier()
            return Call(None, name, self.arguments()) if self.at_op("(") else Member(None, name)
        if token.kind == "variable":
            self.take()
            name = token.text[1:]
            return Variable(_unescape(name[1:-1]) if name.startswith("`") else name)
        if token.kind == "special":
            self.take()
            if token.text == "$this":
                return This()
            raise FhirPathError(f"unsupported variable '{token.text}'")
        if self.at_op("("):
            self.take()
            node = self.binary(0)
            self.expect(")")
            return node
        if self.at_op("{"):
            self.take()
            self.expect("}")
            return Literal(None, "empty")
        raise self.unexpected()


def parse(text: str) -> Node:
    """Parse one FHIRPath expression; raises FhirPathError on a syntax error."""
    if not isinstance(text, str) or not text.strip():
        raise FhirPathError("empty expression")
    return _Parser(text).parse()


# --------------------------------------------------------------------------------------------------
# Compiled values and the compile-time environment
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Val:
    """A compiled expression.

    ``many=True``: ``sql`` is a ``JSON[]`` collection. ``many=False``: at most one value of SQL type
    ``type`` (NULL means empty). ``fhir_type`` remembers a type named by ``ofType()`` so later steps
    (``lowBoundary()``, column typing) can use it. ``root`` marks the resource itself, whose
    top-level elements are read from a single pre-parsed list (see ``Env.root_field``).
    """

    sql: str
    many: bool = False
    type: str = "JSON"
    fhir_type: str | None = None
    root: bool = False
    #: typed navigation: the element the items come from, and the SQL in that element's representation
    node: PathNode | None = None
    nav: str | None = None


@dataclass(frozen=True)
class Scope:
    """What an expression is evaluated against: the focus item and the current %rowIndex."""

    focus: Val
    row_index: str = "CAST(0 AS BIGINT)"


@dataclass(eq=False)
class PathNode:
    """An element reached from the resource by navigation (typed path), with its representation.

    ``rep``: ``struct`` — fetched by the typed parse as a STRUCT of the children the view navigates;
    ``json`` — fetched by the typed parse as JSON text (primitives, resources, or needed as a value);
    ``derived`` — below a ``json`` element, read from its JSON text with ``json_extract``.
    """

    id: int
    key: tuple[str, ...]  # JSON keys from the resource; "@Type" marks an ofType(<resource>) narrowing
    type_name: str | None  # FHIR type of the items (children are looked up in it)
    element: Element | None  # None at the root; a narrowing shares its owner's
    rep: str
    children: dict[str, PathNode] = field(default_factory=dict)
    narrowed: dict[str, PathNode] = field(default_factory=dict)
    owner: PathNode | None = None  # for a narrowing: the inline-resource element whose items it filters
    #: a typed ``repeat`` over this element, which contains itself (Composition.section.section): the element's
    #: name and how many levels the typed parse unrolls (see Env.repeat_item)
    repeat: tuple[str, int] | None = None

    @property
    def item_type(self) -> str:
        """SQL type of one item when it is not a STRUCT: text primitives are read as VARCHAR directly."""
        el = self.element
        text = el is not None and el.kind == "primitive" and el.type_name in TEXT_PRIMITIVES
        return "VARCHAR" if text else "JSON"


@dataclass
class Env:
    """State shared by every expression of one view.

    Parsing a big resource JSON is the dominant cost, so it is parsed once per row: known elements by
    ``json_transform`` into ``typed_sql`` (see the module docstring), and elements the FHIR model does not
    know with ``json_extract(resource, [paths])`` into ``root_list``, referenced by position.
    ``json_keys`` are the elements an earlier compilation found needed as JSON text.
    """

    resource_type: str
    constants: Mapping[str, Val] = field(default_factory=dict)
    resource_sql: str = "__resource"
    root_list: str = "__root"
    root_paths: list[str] = field(default_factory=list)
    typed_sql: str = "__typed"
    json_keys: frozenset[tuple[str, ...]] = frozenset()
    nodes: list[PathNode] = field(default_factory=list)
    _counter: int = 0

    def __post_init__(self) -> None:
        self.root_node = self._new_node((), self.resource_type, None, "struct")

    def _new_node(self, key: tuple[str, ...], type_name: str | None, el: Element | None, rep: str) -> PathNode:
        node = PathNode(len(self.nodes), key, type_name, el, rep)
        self.nodes.append(node)
        return node

    def child(self, parent: PathNode, el: Element) -> PathNode:
        """The node of element ``el`` below ``parent`` (one per key: every path to it shares it)."""
        found = parent.children.get(el.name)
        if found is None:
            key = (*parent.key, el.name)
            if parent.rep != "struct":
                rep = "derived"
            elif el.kind == "primitive" or key in self.json_keys:
                rep = "json"
            else:
                rep = "struct"
            found = parent.children[el.name] = self._new_node(key, el.type_name, el, rep)
        return found

    def narrow(self, parent: PathNode, type_name: str) -> PathNode:
        """The items of ``parent`` (inline resources) that are ``type_name``: same JSON, typed children."""
        found = parent.narrowed.get(type_name)
        if found is None:
            found = parent.narrowed[type_name] = self._new_node(
                (*parent.key, f"@{type_name}"), type_name, parent.element, parent.rep)
            found.owner = parent
        return found

    @staticmethod
    def marker(node: PathNode) -> str:
        """Stands for the JSON text of a STRUCT-shaped node; never valid SQL (see the module docstring)."""
        return f"__json_of_node_{node.id}__"

    def marked_keys(self, sql: str) -> set[tuple[str, ...]]:
        """Elements whose JSON text ``sql`` asks for, plus STRUCT elements that ended up with no child."""
        def fetched(node: PathNode) -> PathNode:  # a narrowing is fetched as part of its owner
            return node.owner or node

        wanted = {fetched(self.nodes[int(i)]).key for i in re.findall(r"__json_of_node_(\d+)__", sql)}
        empty = {n.key for n in self.nodes if n.rep == "struct" and n.element is not None
                 and n.element.kind == "complex" and not n.children}
        # Inline resources of several types share one STRUCT: a key two types shape differently
        # (Encounter.type is a list, Specimen.type is not) cannot be in it, so such items stay JSON.
        clashing = {n.key for n in self.nodes if n.rep == "struct" and n.element is not None
                    and n.element.kind == "resource" and _resource_fields(n) is None}
        return wanted | empty | clashing

    def repeat_item(self, node: PathNode, var: str) -> str:
        """Stands for one item of a typed ``repeat`` over ``node`` as a STRUCT of the children the view navigates,
        without the recursive element: each level's STRUCT nests one level fewer, so the levels only fit one list
        once that is gone. Which children the body navigates is known only once it is compiled: ``settle_repeats``
        writes the STRUCT in then."""
        return f"__repeat_item_{node.id}__({var})"

    def settle_repeats(self, sql: str) -> str:
        """``sql`` with every ``repeat_item`` written out. A body that navigates the recursive element itself
        gets the node's JSON marker instead: the next compilation reads that repeat as JSON."""
        def written(match: re.Match) -> str:
            node, var = self.nodes[int(match[1])], match[2]
            key = node.repeat[0]
            if key in node.children or not node.children:
                return self.marker(node)
            fields = ", ".join(f"{_json_key(name)} := {_field(var, name)}" for name in node.children)
            return f"struct_pack({fields})"

        return re.sub(r"__repeat_item_(\d+)__\((\w+)\)", written, sql)

    def typed_spec(self) -> str | None:
        """The json_transform schema of every element fetched by the typed parse (None: nothing is)."""
        return _spec(self.root_node) if self.root_node.children else None

    def fresh(self) -> str:
        """A lambda parameter name unique within the view (nested lambdas must not shadow)."""
        self._counter += 1
        return f"__v{self._counter}"

    def root_field(self, name: str) -> str:
        """SQL for the top-level element ``name`` of the resource, read from the pre-parsed list."""
        path = _json_path(name)
        if path not in self.root_paths:
            self.root_paths.append(path)
        return f"{self.root_list}[{self.root_paths.index(path) + 1}]"

    def prefetch_sql(self, resource_column: str) -> str | None:
        if not self.root_paths:
            return None
        paths = ", ".join(sql_str(p) for p in self.root_paths)
        return f"json_extract({resource_column}, [{paths}])"

    def root(self) -> Val:
        return Val(self.resource_sql, root=True, node=self.root_node, nav=self.typed_sql)


def _spec(node: PathNode, levels: int | None = None) -> str:
    if node.element is not None and node.element.kind == "resource":
        fields = {"resourceType": '"VARCHAR"', **(_resource_fields(node) or {})}
    else:
        fields = {key: _child_spec(child) for key, child in node.children.items()}
    if node.repeat is not None:
        # unrolled: each level holds the next; the last keeps its own as JSON, so that data nested deeper is
        # seen (and refused) rather than dropped
        key, depth = node.repeat
        levels = depth if levels is None else levels
        fields[key] = f"[{_spec(node, levels - 1)}]" if levels > 1 else '"JSON"'
    return "{" + ", ".join(f"{_json_key(k)}: {v}" for k, v in fields.items()) + "}"


def _child_spec(child: PathNode) -> str:
    inner = _spec(child) if child.rep == "struct" else f'"{child.item_type}"'
    return f"[{inner}]" if child.element and child.element.many else inner


def _resource_fields(node: PathNode) -> dict[str, str] | None:
    """The fields every ofType() narrowing of an inline-resource element navigates; None on a clash."""
    fields: dict[str, str] = {}
    for narrowed in node.narrowed.values():
        for key, child in narrowed.children.items():
            spec = _child_spec(child)
            if fields.setdefault(key, spec) != spec:
                return None
    return fields


def _json_key(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _field(item: str, name: str) -> str:
    """STRUCT field access (any key, quoted)."""
    quoted = name.replace('"', '""')
    return f'{item}."{quoted}"'


_SIMPLE_SQL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[\d+\])?")
_EMPTY = "[]::JSON[]"


# --------------------------------------------------------------------------------------------------
# The compiler
# --------------------------------------------------------------------------------------------------


class FhirPath:
    """Compiles FHIRPath text to SQL within one view's environment."""

    def __init__(self, env: Env):
        self.env = env

    # ---------------------------------------------------------------- entry points
    def compile(self, text: str, scope: Scope) -> Val:
        try:
            return self._node(parse(text), scope)
        except FhirPathError as exc:
            raise FhirPathError(f'{exc} in "{text}"') from None

    def items(self, val: Val) -> str:
        """The collection as ``JSON[]`` (repeat iterates this)."""
        return self._coll(val)

    def iteration(self, val: Val) -> tuple[str, Callable[[str], Val]]:
        """What forEach iterates: the items' list SQL, and the Val of one item given its lambda variable.
        Typed items stay typed, so the columns inside the forEach navigate them without reparsing."""
        if val.node is not None and not val.root:
            node, hint = val.node, val.fhir_type
            return self._nav_coll(val), lambda var: self._nval(node, var, many=False, fhir_type=hint)
        return self._coll(val), lambda var: Val(var)

    def column(self, val: Val, sql_type: str, *, collection: bool, many_error: str) -> str:
        """A column value: a typed scalar, or a typed list when ``collection`` is set."""
        if collection:
            node = val.node
            if val.many and node is not None and node.rep != "struct" and node.item_type == sql_type:
                return val.nav  # already a list of the column's type
            item = self.env.fresh()
            return f"list_transform({self._coll(val)}, lambda {item}: {_from_json(item, sql_type)})"
        if val.many:
            return _from_json(self._one(val, many_error), sql_type)
        if val.type == "JSON":
            return _from_json(val.sql, sql_type)
        if val.type == sql_type:
            return val.sql
        if sql_type == "JSON":
            return f"to_json({val.sql})"
        return f"CAST({val.sql} AS {sql_type})"

    def inferred_type(self, val: Val) -> str:
        """SQL type of a column declared without ``type``: VARCHAR unless the path says otherwise."""
        if not val.many and val.type != "JSON":
            return val.type
        return SQL_TYPE_OF_FHIR.get(val.fhir_type or "", "VARCHAR")

    def condition(self, val: Val, what: str) -> str:
        """A view-level ``where``: empty is false; a non-boolean value is a query-time error."""
        if not val.many and val.type == "BOOLEAN":
            return f"coalesce({val.sql}, false)"
        if not val.many and (val.type != "JSON" or val.root):
            raise FhirPathError("does not evaluate to a boolean")
        item = self._one(val, f"{what} returned more than one value")
        message = sql_str(f"{what} does not evaluate to a boolean")
        return self._let(
            item,
            lambda x: (
                f"CASE WHEN {x} IS NULL THEN false WHEN json_type({x}) = 'BOOLEAN' "
                f"THEN CAST({x} AS BOOLEAN) ELSE error({message}) END"
            ),
        )

    def typed_items(self, val: Val) -> str:
        """A typed value as a list of its items, in the node's own form (STRUCTs for a STRUCT node)."""
        return self._nav_coll(val)

    def typed_item(self, node: PathNode, var: str) -> Val:
        """One item of ``node`` held in lambda variable ``var`` (a STRUCT when the node is one)."""
        return self._nval(node, var, many=False)

    # ---------------------------------------------------------------- typed navigation
    def _nval(self, node: PathNode, nav: str, *, many: bool, fhir_type: str | None = None) -> Val:
        """A value of ``node``'s items in the generic form (``sql``: JSON, a JSON[] collection, or a text
        primitive as VARCHAR), keeping ``nav`` in the node's own form; a STRUCT's ``sql`` is a marker."""
        if node.rep == "struct":
            return Val(self.env.marker(node), many=many, fhir_type=fhir_type, node=node, nav=nav)
        if node.item_type == "VARCHAR":
            if not many:
                return Val(nav, type="VARCHAR", fhir_type=fhir_type, node=node, nav=nav)
            var = self.env.fresh()
            sql = f"list_transform({nav}, lambda {var}: to_json({var}))"  # collections are JSON[]
            return Val(sql, many=True, fhir_type=fhir_type, node=node, nav=nav)
        return Val(nav, many=many, fhir_type=fhir_type, node=node, nav=nav)

    def _nav_coll(self, val: Val) -> str:
        """A typed value as a list of its items (in its own representation)."""
        if val.many:
            return val.nav
        var = self.env.fresh()
        return f"list_filter([{val.nav}], lambda {var}: {var} IS NOT NULL)"

    def _typed_member(self, focus: Val, name: str, fhir_type: str | None) -> Val | None:
        """``focus.name`` through the FHIR model, or None when the model does not know the element."""
        parent = focus.node
        el = element(parent.type_name, name) if parent is not None else None
        if el is None:
            return None
        child = self.env.child(parent, el)
        primitive_list = el.many and el.kind == "primitive"
        text = child.item_type == "VARCHAR"

        def of_item(item: str) -> str:
            if parent.rep == "struct":
                return _field(item, name)
            path = _json_path(name)
            extract = "json_extract_string" if text else "json_extract"
            return f"{extract}({item}, {sql_str(path + '[*]' if el.many else path)})"

        if not focus.many:
            nav = of_item(focus.nav)
            if el.many:
                nav = f"coalesce({nav}, [])"
        else:
            var = self.env.fresh()
            nav = f"list_transform({focus.nav}, lambda {var}: {of_item(var)})"
            if el.many:
                nav = f"flatten({nav})"  # flatten skips the NULL lists of items without the element
            else:
                keep = self.env.fresh()
                nav = f"list_filter({nav}, lambda {keep}: {keep} IS NOT NULL)"
        if primitive_list:
            # FHIR keeps nulls inside primitive arrays (to align "_given" extensions): not values.
            keep = self.env.fresh()
            typed = parent.rep == "struct" or text  # SQL NULL there; json_extract gives the text 'null'
            test = f"{keep} IS NOT NULL" if typed else f"CAST({keep} AS VARCHAR) <> 'null'"
            nav = f"list_filter({nav}, lambda {keep}: {test})"
        return self._nval(child, nav, many=focus.many or el.many, fhir_type=fhir_type)

    # ---------------------------------------------------------------- SQL building blocks
    def _let(self, sql: str, body: Callable[[str], str]) -> str:
        """Evaluate ``sql`` once and use it several times in ``body`` (a one-element lambda)."""
        if _SIMPLE_SQL.fullmatch(sql):
            return body(sql)
        var = self.env.fresh()
        return f"list_transform([{sql}], lambda {var}: {body(var)})[1]"

    def _coll(self, val: Val) -> str:
        if val.many:
            return val.sql
        if val.root:
            return f"[{val.sql}]"
        item = val.sql if val.type == "JSON" else f"to_json({val.sql})"
        var = self.env.fresh()
        return f"list_filter([{item}], lambda {var}: {var} IS NOT NULL)"

    def _one(self, val: Val, many_error: str) -> str:
        """At most one item (SQL NULL when empty); more than one raises ``many_error`` at query time."""
        if not val.many:
            return val.sql
        message = sql_str(many_error)
        return self._let(val.sql, lambda c: f"CASE WHEN len({c}) > 1 THEN error({message}) ELSE {c}[1] END")

    def _as_list(self, raw_json: str) -> str:
        """A possibly-array JSON value as a collection: arrays spread, null and missing are empty."""
        var = self.env.fresh()
        return self._let(
            raw_json,
            lambda r: (
                f"CASE coalesce(json_type({r}), 'NULL') "
                f"WHEN 'ARRAY' THEN list_filter(CAST({r} AS JSON[]), lambda {var}: {var} IS NOT NULL) "
                f"WHEN 'NULL' THEN {_EMPTY} ELSE [{r}] END"
            ),
        )

    def _map_items(self, val: Val, per_item: Callable[[str], str]) -> str:
        """Apply ``per_item`` (JSON item → JSON[]) to every item and flatten the results."""
        if not val.many:
            if val.root or val.type == "JSON":
                return per_item(val.sql)
            return _EMPTY  # primitives have no children
        var = self.env.fresh()
        return f"flatten(list_transform({val.sql}, lambda {var}: {per_item(var)}))"

    def _bool(self, val: Val) -> str:
        """FHIRPath singleton evaluation to Boolean: empty → NULL, a non-boolean item → true."""
        if not val.many and val.type == "BOOLEAN":
            return val.sql
        item = self._one(val, "expected a single boolean but found several items")
        if val.type != "JSON" and not val.many:
            return f"({item} IS NOT NULL)"
        return self._let(
            item,
            lambda x: (
                f"CASE WHEN {x} IS NULL THEN NULL WHEN json_type({x}) = 'BOOLEAN' "
                f"THEN CAST({x} AS BOOLEAN) ELSE true END"
            ),
        )

    # ---------------------------------------------------------------- nodes
    def _node(self, node: Node, scope: Scope) -> Val:
        if isinstance(node, Literal):
            return _literal(node)
        if isinstance(node, This):
            return scope.focus
        if isinstance(node, Variable):
            return self._variable(node.name, scope)
        if isinstance(node, Member):
            return self._member_node(node, scope)
        if isinstance(node, Call):
            return self._call(node, scope)
        if isinstance(node, Indexer):
            return self._indexer(node, scope)
        if isinstance(node, Unary):
            return self._unary(node, scope)
        return self._binary(node, scope)

    def _input(self, base: Node | None, scope: Scope) -> Val:
        return scope.focus if base is None else self._node(base, scope)

    def _variable(self, name: str, scope: Scope) -> Val:
        if name == "rowIndex":
            return Val(scope.row_index, type="BIGINT")
        if name in ("resource", "rootResource"):
            return self.env.root()
        if name in self.env.constants:
            return self.env.constants[name]
        raise FhirPathError(f"undefined constant '%{name}'")

    def _member_node(self, node: Member, scope: Scope) -> Val:
        focus = self._input(node.base, scope)
        # "Patient.name" on a Patient view: the leading type name denotes the resource itself.
        if node.base is None and focus.root and node.name == self.env.resource_type:
            return focus
        return self._member(focus, node.name)

    def _member(
        self, focus: Val, name: str, *, choice_search: bool = True, fhir_type: str | None = None
    ) -> Val:
        typed = self._typed_member(focus, name, fhir_type)
        if typed is not None:
            return typed
        search = choice_search and name in CHOICE_ELEMENTS
        if focus.root:
            raw = self._root_member(name, search)
            return Val(self._as_list(raw), many=True, fhir_type=fhir_type)
        sql = self._map_items(focus, lambda item: self._as_list(self._item_member(item, name, search)))
        return Val(sql, many=True, fhir_type=fhir_type)

    def _root_member(self, name: str, search_choice: bool) -> str:
        direct = self.env.root_field(name)
        if not search_choice:
            return direct
        return f"coalesce({direct}, {self._choice_value(self.env.resource_sql, name)})"

    def _item_member(self, item: str, name: str, search_choice: bool) -> str:
        direct = f"json_extract({item}, {sql_str(_json_path(name))})"
        if not search_choice:
            return direct
        return f"coalesce({direct}, {self._choice_value(item, name)})"

    def _choice_value(self, obj: str, name: str) -> str:
        """The value of the first key ``name<Type>`` of a JSON object: a choice element named without
        its type ("value"). Only reached when the plain key is absent (coalesce is lazy)."""
        var = self.env.fresh()
        pattern = sql_str(f"^{name}[A-Z]")
        key = f"list_filter(json_keys({obj}), lambda {var}: regexp_matches({var}, {pattern}))[1]"
        return f"json_extract({obj}, '$.\"' || {key} || '\"')"

    def _indexer(self, node: Indexer, scope: Scope) -> Val:
        base = self._node(node.base, scope)
        index = self._node(node.index, scope)
        if index.many or index.type not in ("BIGINT", "JSON"):
            raise FhirPathError("an index must be a single integer")
        position = index.sql if index.type == "BIGINT" else f"TRY_CAST({index.sql} AS BIGINT)"
        if base.node is not None and not base.root:
            return self._nval(base.node, f"{self._nav_coll(base)}[({position}) + 1]", many=False,
                              fhir_type=base.fhir_type)
        return Val(f"{self._coll(base)}[({position}) + 1]", fhir_type=base.fhir_type)

    def _unary(self, node: Unary, scope: Scope) -> Val:
        operand = self._node(node.operand, scope)
        number, sql_type = self._number(operand)
        return Val(number if node.op == "+" else f"(-{number})", type=sql_type)

    # ---------------------------------------------------------------- operators
    def _binary(self, node: Binary, scope: Scope) -> Val:
        op = node.op
        left, right = self._node(node.left, scope), self._node(node.right, scope)
        if op in ("and", "or", "xor", "implies"):
            a, b = self._bool(left), self._bool(right)
            sql = {
                "and": f"({a} AND {b})",
                "or": f"({a} OR {b})",
                "xor": f"({a} <> {b})",
                "implies": f"((NOT {a}) OR {b})",  # SQL's three-valued logic matches FHIRPath's
            }[op]
            return Val(sql, type="BOOLEAN")
        if op in ("=", "!="):
            equal = self._equals(left, right)
            return Val(equal if op == "=" else f"(NOT {equal})", type="BOOLEAN")
        if op in ("<", ">", "<=", ">="):
            a = replace(left, sql=self._one(left, f"'{op}' needs a single value on its left"), many=False,
                        node=None, nav=None)
            b = replace(right, sql=self._one(right, f"'{op}' needs a single value on its right"), many=False,
                        node=None, nav=None)
            return Val(self._compare(op, a, b), type="BOOLEAN")
        if op == "|":
            return Val(f"list_distinct(list_concat({self._coll(left)}, {self._coll(right)}))", many=True)
        if op in ("+", "-", "*", "/", "div", "mod", "&"):
            return self._arithmetic(op, left, right)
        raise FhirPathError(f"operator '{op}' is not supported")

    def _equals(self, left: Val, right: Val) -> str:
        """FHIRPath '=': empty if either side is empty; collections compare item by item in order."""
        if not left.many and not right.many:
            return self._compare("=", left, right)
        if left.many and right.many:
            var, index = self.env.fresh(), self.env.fresh()
            return self._let(
                left.sql,
                lambda a: self._let(
                    right.sql,
                    lambda b: (
                        f"CASE WHEN len({a}) = 0 OR len({b}) = 0 THEN NULL "
                        f"WHEN len({a}) <> len({b}) THEN false ELSE list_bool_and(list_transform({a}, "
                        f"lambda {var}, {index}: {self._compare('=', Val(var), Val(f'{b}[{index}]'))})) END"
                    ),
                ),
            )
        many, one = (left, right) if left.many else (right, left)
        return self._let(
            many.sql,
            lambda c: (
                f"CASE WHEN len({c}) = 0 OR ({one.sql}) IS NULL THEN NULL WHEN len({c}) > 1 THEN false "
                f"ELSE {self._compare('=', Val(f'{c}[1]'), one)} END"
            ),
        )

    def _compare(self, op: str, a: Val, b: Val) -> str:
        """Compare two single values; JSON items are converted to the other side's SQL type."""
        if a.root or b.root:
            raise FhirPathError("a resource cannot be compared")
        if a.type == "JSON" and b.type == "JSON":
            return self._let(
                a.sql,
                lambda x: self._let(
                    b.sql,
                    lambda y: (
                        f"CASE WHEN json_type({x}) IN {_JSON_NUMBER_TYPES} AND json_type({y}) IN "
                        f"{_JSON_NUMBER_TYPES} THEN CAST({x} AS DOUBLE) {op} CAST({y} AS DOUBLE) "
                        f"ELSE ({x} ->> '$') {op} ({y} ->> '$') END"
                    ),
                ),
            )
        if a.type == "JSON":
            return f"({_json_as(a.sql, b.type)} {op} {b.sql})"
        if b.type == "JSON":
            return f"({a.sql} {op} {_json_as(b.sql, a.type)})"
        numeric = ("BIGINT", "DOUBLE")
        if a.type == b.type or (a.type in numeric and b.type in numeric):
            return f"({a.sql} {op} {b.sql})"
        return f"(CAST({a.sql} AS VARCHAR) {op} CAST({b.sql} AS VARCHAR))"

    def _number(self, val: Val) -> tuple[str, str]:
        item = self._one(val, "arithmetic needs single values")
        if not val.many and val.type in ("BIGINT", "DOUBLE"):
            return item, val.type
        if not val.many and val.type != "JSON":
            raise FhirPathError("arithmetic needs numbers")
        return f"TRY_CAST({item} AS DOUBLE)", "DOUBLE"

    def _text(self, val: Val) -> str:
        item = self._one(val, "string concatenation needs single values")
        if not val.many and val.type == "VARCHAR":
            return item
        if val.many or val.type == "JSON":
            return f"({item} ->> '$')"
        return f"CAST({item} AS VARCHAR)"

    def _arithmetic(self, op: str, left: Val, right: Val) -> Val:
        if op == "&":  # concatenation that treats empty as ''
            return Val(
                f"(coalesce({self._text(left)}, '') || coalesce({self._text(right)}, ''))", type="VARCHAR"
            )
        if op == "+" and "VARCHAR" in (left.type, right.type) and not (left.many and right.many):
            return Val(f"({self._text(left)} || {self._text(right)})", type="VARCHAR")
        (a, ta), (b, tb) = self._number(left), self._number(right)
        integers = ta == tb == "BIGINT"
        if op == "/":
            return Val(f"(CAST({a} AS DOUBLE) / nullif({b}, 0))", type="DOUBLE")
        if op == "div":
            return Val(f"CAST(trunc({a} / nullif({b}, 0)) AS BIGINT)", type="BIGINT")
        if op == "mod":
            return Val(f"({a} % nullif({b}, 0))", type="BIGINT" if integers else "DOUBLE")
        return Val(f"({a} {op} {b})", type="BIGINT" if integers else "DOUBLE")

    # ---------------------------------------------------------------- functions
    def _call(self, node: Call, scope: Scope) -> Val:
        handler = _FUNCTIONS.get(node.name)
        if handler is None:
            raise FhirPathError(f"unknown function '{node.name}()'")
        low, high = _ARITY[node.name]
        if not low <= len(node.args) <= high:
            expected = str(low) if low == high else f"{low} to {high}"
            raise FhirPathError(f"{node.name}() takes {expected} argument(s), got {len(node.args)}")
        return handler(self, node, scope)

    def _string_argument(self, node: Node, scope: Scope, function: str) -> str:
        val = self._node(node, scope)
        if val.many or val.type not in ("VARCHAR", "JSON"):
            raise FhirPathError(f"{function}() needs a single string argument")
        return val.sql if val.type == "VARCHAR" else f"({val.sql} ->> '$')"

    def _fn_where(self, node: Call, scope: Scope) -> Val:
        focus = self._input(node.base, scope)
        return self._filter(focus, node.args[0], scope)

    def _filter(self, focus: Val, criteria: Node, scope: Scope) -> Val:
        var = self.env.fresh()
        if focus.node is not None and not focus.root:
            item = self._nval(focus.node, var, many=False, fhir_type=focus.fhir_type)
            test = self._bool(self._node(criteria, Scope(item, scope.row_index)))
            nav = f"list_filter({self._nav_coll(focus)}, lambda {var}: {test})"
            return self._nval(focus.node, nav, many=True, fhir_type=focus.fhir_type)
        inner = Scope(Val(var), scope.row_index)
        test = self._bool(self._node(criteria, inner))
        return Val(
            f"list_filter({self._coll(focus)}, lambda {var}: {test})", many=True, fhir_type=focus.fhir_type
        )

    def _fn_exists(self, node: Call, scope: Scope) -> Val:
        focus = self._input(node.base, scope)
        if node.args:
            focus = self._filter(focus, node.args[0], scope)
        if focus.root:
            return Val("true", type="BOOLEAN")
        if focus.node is not None:
            test = f"(len({focus.nav}) > 0)" if focus.many else f"({focus.nav} IS NOT NULL)"
            return Val(test, type="BOOLEAN")
        if not focus.many:
            return Val(f"({focus.sql} IS NOT NULL)", type="BOOLEAN")
        return Val(f"(len({focus.sql}) > 0)", type="BOOLEAN")

    def _fn_empty(self, node: Call, scope: Scope) -> Val:
        exists = self._fn_exists(node, scope)
        return Val(f"(NOT {exists.sql})", type="BOOLEAN")

    def _fn_first(self, node: Call, scope: Scope) -> Val:
        focus = self._input(node.base, scope)
        if not focus.many:
            return focus
        if focus.node is not None:
            return self._nval(focus.node, f"{focus.nav}[1]", many=False, fhir_type=focus.fhir_type)
        return Val(f"{focus.sql}[1]", fhir_type=focus.fhir_type)

    def _fn_last(self, node: Call, scope: Scope) -> Val:
        focus = self._input(node.base, scope)
        if not focus.many:
            return focus
        if focus.node is not None:
            return self._nval(focus.node, f"{focus.nav}[-1]", many=False, fhir_type=focus.fhir_type)
        return Val(f"{focus.sql}[-1]", fhir_type=focus.fhir_type)

    def _fn_count(self, node: Call, scope: Scope) -> Val:
        focus = self._input(node.base, scope)
        if focus.node is not None and not focus.root:
            return Val(f"len({self._nav_coll(focus)})", type="BIGINT")
        return Val(f"len({self._coll(focus)})", type="BIGINT")

    def _fn_not(self, node: Call, scope: Scope) -> Val:
        return Val(f"(NOT {self._bool(self._input(node.base, scope))})", type="BOOLEAN")

    def _fn_join(self, node: Call, scope: Scope) -> Val:
        focus = self._input(node.base, scope)
        separator = self._string_argument(node.args[0], scope, "join") if node.args else "''"
        var = self.env.fresh()
        texts = f"list_transform({self._coll(focus)}, lambda {var}: {var} ->> '$')"
        return Val(f"array_to_string({texts}, {separator})", type="VARCHAR")

    def _fn_extension(self, node: Call, scope: Scope) -> Val:
        url = self._string_argument(node.args[0], scope, "extension")
        extensions = self._member(self._input(node.base, scope), "extension", choice_search=False)
        var = self.env.fresh()
        if extensions.node is not None:
            item = self._nval(extensions.node, var, many=False)
            own_url = self._member(item, "url", choice_search=False)
            test = f"{self._text(own_url)} = {url}"
            nav = f"list_filter({self._nav_coll(extensions)}, lambda {var}: {test})"
            return self._nval(extensions.node, nav, many=True)
        return Val(f"list_filter({extensions.sql}, lambda {var}: ({var} ->> 'url') = {url})", many=True)

    def _fn_of_type(self, node: Call, scope: Scope) -> Val:
        type_name = _type_name(node.args[0])
        base = node.base
        if isinstance(base, Member) and (type_name in DATA_TYPES or type_name[:1].islower()):
            # value.ofType(Quantity) is the JSON key "valueQuantity" of the same parent.
            parent = self._input(base.base, scope)
            choice = self._member(
                parent, base.name + _capitalised(type_name), choice_search=False, fhir_type=type_name
            )
            if base.name in CHOICE_ELEMENTS:
                return choice
            # Without a schema "name" might not be a choice at all (name.ofType(HumanName)).
            plain = self._member(parent, base.name, choice_search=False)
            typed = self._of_type(plain, type_name)
            return Val(f"list_concat({self._coll(choice)}, {typed.sql})", many=True, fhir_type=type_name)
        return self._of_type(self._input(base, scope), type_name)

    def _of_type(self, focus: Val, type_name: str) -> Val:
        var = self.env.fresh()
        test = _type_test(var, type_name)
        node = focus.node
        inline = node is not None and node.element is not None and node.element.kind == "resource"
        if inline and node.owner is None and type_name not in DATA_TYPES and type_name[:1].isupper():
            # contained.ofType(Specimen): the items that are Specimens, whose children Specimen's model types
            if node.rep == "struct":
                test = f"({_field(var, 'resourceType')} = {sql_str(type_name)})"
            nav = f"list_filter({self._nav_coll(focus)}, lambda {var}: {test})"
            return self._nval(self.env.narrow(node, type_name), nav, many=True, fhir_type=type_name)
        return Val(f"list_filter({self._coll(focus)}, lambda {var}: {test})", many=True, fhir_type=type_name)

    def _fn_get_resource_key(self, node: Call, scope: Scope) -> Val:
        ids = self._member(self._input(node.base, scope), "id", choice_search=False)
        key = self._one(ids, "getResourceKey() on more than one resource")
        if not ids.many and ids.type == "VARCHAR":
            return Val(key, type="VARCHAR")
        return Val(f"({key} ->> '$')", type="VARCHAR")

    def _fn_get_reference_key(self, node: Call, scope: Scope) -> Val:
        wanted = _type_name(node.args[0]) if node.args else None
        refs = self._coll(self._input(node.base, scope))
        ref, key = self.env.fresh(), self.env.fresh()
        keep = f"{key}.k IS NOT NULL" + (f" AND {key}.t = {sql_str(wanted)}" if wanted else "")
        keys = f"list_transform({refs}, lambda {ref}: {self._reference_key(ref)})"
        return Val(
            f"list_transform(list_filter({keys}, lambda {key}: {keep}), lambda {key}: to_json({key}.k))",
            many=True,
        )

    def _reference_key(self, ref: str) -> str:
        """STRUCT(t type, k key) of one Reference item; k is what getResourceKey() gives the target."""
        parts = (
            f"regexp_extract({ref} ->> 'reference', {sql_str(_REFERENCE_RE)}, ['t', 'k', 'urn_t', 'urn_k'])"
        )
        return self._let(
            parts,
            lambda m: (
                f"{{'t': coalesce(nullif({m}.t, ''), {ref} ->> 'type'), 'k': nullif({m}.k || {m}.urn_k, '')}}"
            ),
        )

    def _fn_boundary(self, node: Call, scope: Scope) -> Val:
        focus = self._input(node.base, scope)
        item = self._one(focus, f"{node.name}() needs a single value")
        if not focus.many and focus.type != "JSON":
            item = f"to_json({item})"
        high = node.name == "highBoundary"
        hint = focus.fhir_type
        return Val(self._let(item, lambda x: _boundary_sql(x, hint, high)), fhir_type=hint)


def _literal(node: Literal) -> Val:
    if node.kind == "string":
        return Val(sql_str(str(node.value)), type="VARCHAR")
    if node.kind == "integer":
        return Val(f"CAST({node.value} AS BIGINT)", type="BIGINT")
    if node.kind == "decimal":
        return Val(f"CAST({node.value} AS DOUBLE)", type="DOUBLE")
    if node.kind == "boolean":
        return Val("true" if node.value else "false", type="BOOLEAN")
    return Val(_EMPTY, many=True)


def _type_name(node: Node) -> str:
    """The type named by an ofType()/getReferenceKey() argument (``Quantity``, ``FHIR.Quantity``)."""
    if isinstance(node, Member):
        return node.name
    if isinstance(node, Literal) and node.kind == "string":
        return str(node.value)
    raise FhirPathError("expected a type name")


def _type_test(item: str, type_name: str) -> str:
    """SQL test that a JSON item is of ``type_name`` (best effort without a FHIR schema)."""
    if type_name in _PRIMITIVE_JSON_TYPES:
        return f"json_type({item}) IN {_PRIMITIVE_JSON_TYPES[type_name]}"
    if type_name[:1].islower():  # string-like primitives: string, code, dateTime, uri, ...
        return f"json_type({item}) = 'VARCHAR'"
    if type_name in DATA_TYPES:
        return f"(json_type({item}) = 'OBJECT' AND ({item} ->> 'resourceType') IS NULL)"
    return f"(({item} ->> 'resourceType') = {sql_str(type_name)})"


def _json_as(item: str, sql_type: str) -> str:
    """A JSON item viewed as ``sql_type`` for comparison (NULL when it does not convert)."""
    if sql_type == "VARCHAR":
        return f"({item} ->> '$')"
    if sql_type in ("BIGINT", "DOUBLE"):
        return f"TRY_CAST({item} AS DOUBLE)"
    return f"TRY_CAST({item} AS {sql_type})"


def _from_json(item: str, sql_type: str) -> str:
    """A JSON item as a column value: text unquoted, numbers and booleans cast."""
    if sql_type == "JSON":
        return item
    if sql_type == "VARCHAR":
        return f"({item} ->> '$')"
    return f"CAST({item} AS {sql_type})"


# A literal reference "[.../]Type/id[/_history/v]"; urn:uuid / urn:oid references carry no type.
_REFERENCE_RE = (
    r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-\.]{1,64})(?:/_history/[A-Za-z0-9\-\.]{1,64})?$"
    r"|^urn:(?:uuid|oid):()(.+)$"
)


# -- lowBoundary() / highBoundary(): the precision-dependent limits of a decimal, date, dateTime or time.
_DATE_RE = r"^\d{4}(-\d{2}(-\d{2})?)?$"
_DATETIME_RE = (
    r"^(\d{4}(?:-\d{2}(?:-\d{2})?)?)(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?(Z|[+-]\d{2}:\d{2})?$"
)
_TIME_RE = r"^(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?$"


def _boundary_sql(item: str, hint: str | None, high: bool) -> str:
    text = f"({item} ->> '$')"
    decimal = _decimal_boundary(item, high)
    date = _date_boundary(text, high)
    datetime = _datetime_boundary(text, high)
    time = _time_boundary(text, high)
    if hint == "date":
        string_case = date
    elif hint in ("dateTime", "instant"):
        string_case = datetime
    elif hint == "time":
        string_case = time
    else:  # no type known: recognise the lexical form
        string_case = (
            f"CASE WHEN regexp_matches({text}, {sql_str(_DATE_RE)}) THEN {date} "
            f"WHEN regexp_matches({text}, {sql_str(_TIME_RE)}) THEN {time} "
            f"WHEN regexp_matches({text}, {sql_str(_DATETIME_RE)}) THEN {datetime} END"
        )
    return (
        f"CASE WHEN json_type({item}) IN {_JSON_NUMBER_TYPES} THEN to_json({decimal}) "
        f"WHEN json_type({item}) = 'VARCHAR' THEN to_json({string_case}) END"
    )


def _decimal_boundary(item: str, high: bool) -> str:
    # 1.0 has precision 1, so its limits are 0.95 and 1.05 (half a unit of the last digit).
    text = f"CAST({item} AS VARCHAR)"
    digits = (
        f"CAST(CASE WHEN contains({text}, '.') THEN length(split_part({text}, '.', 2)) ELSE 0 END AS INTEGER)"
    )
    sign = "+" if high else "-"
    return f"round(CAST({item} AS DOUBLE) {sign} 0.5 * pow(10, -{digits}), {digits} + 1)"


def _date_boundary(text: str, high: bool) -> str:
    if not high:
        return (
            f"CASE length({text}) WHEN 4 THEN {text} || '-01-01' WHEN 7 THEN {text} || '-01' ELSE {text} END"
        )
    month_end = f"strftime(last_day(CAST({text} || '-01' AS DATE)), '%Y-%m-%d')"
    return f"CASE length({text}) WHEN 4 THEN {text} || '-12-31' WHEN 7 THEN {month_end} ELSE {text} END"


def _datetime_boundary(text: str, high: bool) -> str:
    def part(n: int) -> str:
        return f"nullif(regexp_extract({text}, {sql_str(_DATETIME_RE)}, {n}), '')"

    date = _date_boundary(part(1), high)
    hour, minute = (
        f"coalesce({part(2)}, '{'23' if high else '00'}')",
        f"coalesce({part(3)}, '{'59' if high else '00'}')",
    )
    second = f"coalesce({part(4)}, '{'59' if high else '00'}')"
    fraction = f"rpad(coalesce({part(5)}, ''), 3, '{'9' if high else '0'}')"
    zone = f"coalesce({part(6)}, '{'-12:00' if high else '+14:00'}')"  # the widest offsets FHIR allows
    return f"({date} || 'T' || {hour} || ':' || {minute} || ':' || {second} || '.' || {fraction} || {zone})"


def _time_boundary(text: str, high: bool) -> str:
    def part(n: int) -> str:
        return f"nullif(regexp_extract({text}, {sql_str(_TIME_RE)}, {n}), '')"

    second = f"coalesce({part(3)}, '{'59' if high else '00'}')"
    fraction = f"rpad(coalesce({part(4)}, ''), 3, '{'9' if high else '0'}')"
    return f"({part(1)} || ':' || {part(2)} || ':' || {second} || '.' || {fraction})"


_FUNCTIONS: dict[str, Callable[[FhirPath, Call, Scope], Val]] = {
    "where": FhirPath._fn_where,
    "exists": FhirPath._fn_exists,
    "empty": FhirPath._fn_empty,
    "first": FhirPath._fn_first,
    "last": FhirPath._fn_last,
    "count": FhirPath._fn_count,
    "not": FhirPath._fn_not,
    "join": FhirPath._fn_join,
    "extension": FhirPath._fn_extension,
    "ofType": FhirPath._fn_of_type,
    "getResourceKey": FhirPath._fn_get_resource_key,
    "getReferenceKey": FhirPath._fn_get_reference_key,
    "lowBoundary": FhirPath._fn_boundary,
    "highBoundary": FhirPath._fn_boundary,
}

#: (minimum, maximum) number of arguments of each function.
# fmt: off
_ARITY = {
    "where": (1, 1), "exists": (0, 1), "empty": (0, 0), "first": (0, 0), "last": (0, 0),
    "count": (0, 0), "not": (0, 0), "join": (0, 1), "extension": (1, 1), "ofType": (1, 1),
    "getResourceKey": (0, 0), "getReferenceKey": (0, 1), "lowBoundary": (0, 1), "highBoundary": (0, 1),
}
# fmt: on
