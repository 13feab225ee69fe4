"""The raw vault: identifying values are sealed before anything is written, so the warehouse holds no raw
identifier in any schema (docs/privacy.md).

A value becomes `kvault:v1:<base64url>` — AES-SIV (deterministic authenticated encryption, RFC 5297) under a key
derived from the pseudonym key with HKDF-SHA256 and the label "karte raw vault v1". Deterministic, so a re-run
or a crash recovery writes byte-identical rows; authenticated, so a token sealed under another key is refused,
not misread. Staging reveals a value in memory only where a rule or the pseudonym needs it.

What is sealed (`seal_resource`, one walk per resource of the listed types, nothing for the others but their
patient reference and contained resources): Patient and RelatedPerson identifiers, names, telecoms, addresses
(all but the prefecture, country, use and type), contacts and narrative; Practitioner names, telecoms and
addresses; Coverage identifiers, subscriberId and the insured person's 記号・番号・枝番 extensions; the patient
named by a Consent or an AuditEvent; the identifier and display of any resource's subject / patient /
beneficiary reference. Whole texts that cannot be walked (a 特定健診 CDA
document, an unreadable line or file in quarantine) are sealed whole.
"""

import base64
import binascii
import re
from functools import lru_cache

import polars as pl
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pipelines.fhir.systems import INSURANCE_MEMBER_ID

PREFIX = "kvault:v1:"
LABEL = b"karte raw vault v1"
#: a number where a string belongs is sealed as {"kvault": token}: still not a string, so the structure check
#: rejects it exactly as it would the number, and the number is not kept
WRAPPED = "kvault"


class VaultError(ValueError):
    """A token that does not open under this key (another KARTE_PSEUDONYM_KEY, or not a token at all)."""


def vault_key(pseudonym_key: bytes) -> bytes:
    """512 bits for AES-256-SIV, bound to the pseudonym key but never equal to it (a separate label)."""
    return HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=LABEL).derive(pseudonym_key)


class Vault:
    """Seals and reveals strings under one pseudonym key, each distinct value once (patients repeat across
    thousands of records)."""

    def __init__(self, pseudonym_key: bytes):
        self._aead = AESSIV(vault_key(pseudonym_key))
        self.seal = lru_cache(maxsize=1 << 16)(self._seal)
        self.reveal = lru_cache(maxsize=1 << 16)(self._reveal)

    def _seal(self, text: str) -> str:
        sealed = self._aead.encrypt(text.encode("utf-8", errors="surrogatepass"), None)
        return PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def _reveal(self, token: str) -> str:
        if not token.startswith(PREFIX):
            raise VaultError("not a vault token")
        body = token[len(PREFIX):]
        try:
            sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return self._aead.decrypt(sealed, None).decode("utf-8", errors="surrogatepass")
        except (InvalidTag, binascii.Error, ValueError):
            raise VaultError("a vault token does not open with this key (was KARTE_PSEUDONYM_KEY changed since "
                             "the data was ingested?)") from None

    def seal_leaf(self, value: object) -> object:
        """Strings become tokens; numbers become {"kvault": token} (see WRAPPED); anything else is kept."""
        if isinstance(value, str):
            return self.seal(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {WRAPPED: self.seal(repr(value))}
        return value


@lru_cache(maxsize=4)
def vault_for(pseudonym_key: bytes) -> Vault:
    return Vault(pseudonym_key)


def seal(text: str, pseudonym_key: bytes) -> str:
    """A whole text sealed (a 特定健診 CDA document, an unreadable line or file). Not through the seal cache,
    which is for values that repeat across records (names, identifiers): a document is sealed once, and the
    cache kept every one (document and token, ~45 kB each) for the whole run, 165 MiB for 4 × the bench sample
    and up to 2.9 GiB at its 65,536 entries."""
    return vault_for(pseudonym_key)._seal(text)


def reveal(token: str, pseudonym_key: bytes) -> str:
    """The value behind a token; VaultError when it was not sealed under this key."""
    return vault_for(pseudonym_key).reveal(token)


def reveal_text(value: str, pseudonym_key: bytes) -> str:
    """A sealed text revealed; a value that is not a token (raw written before the vault) as it is. Not through
    the reveal cache: a whole document is read once, and 65,536 cached CDA documents (token and text, ~46 kB
    each) would hold 2.8 GiB."""
    return vault_for(pseudonym_key)._reveal(value) if is_token(value) else value


def is_token(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


# --- staging: reveal in memory where a value is needed -------------------------------------------------------

def _mapping(tokens: pl.Series, pseudonym_key: bytes) -> tuple[list[str], list[str]]:
    v = vault_for(pseudonym_key)
    distinct = [t for t in tokens.drop_nulls().unique().to_list() if t.startswith(PREFIX)]
    return distinct, [v.reveal(t) for t in distinct]


def reveal_series(values: pl.Series, pseudonym_key: bytes) -> pl.Series:
    """Each distinct token revealed once; values that are not tokens (never sealed) pass unchanged. Works on a
    String column and on a List(String) column."""
    if values.dtype == pl.List(pl.String):
        old, new = _mapping(values.explode(), pseudonym_key)
        return values.list.eval(pl.element().replace(old, new)) if old else values
    old, new = _mapping(values, pseudonym_key)
    return values.replace(old, new) if old else values


def reveal_columns(frame: pl.DataFrame, columns: list[str], pseudonym_key: bytes) -> pl.DataFrame:
    return frame.with_columns([reveal_series(frame[c], pseudonym_key) for c in columns if c in frame.columns])


# --- raw: seal a resource in place ---------------------------------------------------------------------------

#: keys whose values stay in clear inside a sealed subtree: structure and codes, never a person's value
_STRUCTURE = frozenset({"use", "system", "url", "valueCode", "type", "rank", "period", "start", "end", "code",
                        "gender", "country", "state"})
#: what a structural value looks like (a code, a URI, a date): a name or an address written there by mistake
#: does not, and is sealed like any other value
_CODE = re.compile(r"[!-~]{1,200}")
_PREFECTURE = re.compile(r"\S{1,4}[都道府県]")


def _clear(key: str, value: object) -> bool:
    if isinstance(value, str):
        return bool(_CODE.fullmatch(value) or (key == "state" and _PREFECTURE.fullmatch(value)))
    return isinstance(value, bool) or (key == "rank" and isinstance(value, int))


def _seal_tree(v: Vault, node: object, keep: frozenset[str] = _STRUCTURE, key: str = "") -> object:
    """Every string or number under node, but code-like values under the keys in keep."""
    if isinstance(node, dict):
        return {k: _seal_tree(v, x, keep, k) for k, x in node.items()}
    if isinstance(node, list):
        return [_seal_tree(v, x, keep, key) for x in node]
    return node if key in keep and _clear(key, node) else v.seal_leaf(node)


def _seal_values(v: Vault, items: object, key: str = "value") -> object:
    """`key` of each element of a list (identifier[].value, telecom[].value); anything malformed whole."""
    if not isinstance(items, list):
        return _seal_tree(v, items)
    out = []
    for item in items:
        if isinstance(item, dict):
            item = dict(item)
            if key in item:
                item[key] = _seal_tree(v, item[key])
            out.append(item)
        else:
            out.append(_seal_tree(v, item))
    return out


def _seal_reference(v: Vault, ref: object) -> object:
    """A Reference naming a person: its identifier's value and its display."""
    if not isinstance(ref, dict):
        return ref
    ref = dict(ref)
    if "display" in ref:
        ref["display"] = _seal_tree(v, ref["display"])
    ident = ref.get("identifier")
    if isinstance(ident, dict):
        ref["identifier"] = {**ident, **({"value": _seal_tree(v, ident["value"])} if "value" in ident else {})}
    elif ident is not None:
        ref["identifier"] = _seal_tree(v, ident)
    return ref


def _seal_narrative(v: Vault, text: object) -> object:
    """Narrative that may show the person: the div stays valid XHTML, its content becomes one token."""
    if isinstance(text, dict) and isinstance(text.get("div"), str):
        return {**text, "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{v.seal(text["div"])}</div>'}
    return text


def _seal_who(v: Vault, r: dict, trees: tuple[str, ...]) -> None:
    """What names a person in any resource about one: the `trees` (names, addresses…) whole, telecom values and
    the narrative."""
    for key in trees:
        if key in r:
            r[key] = _seal_tree(v, r[key])
    if "telecom" in r:
        r["telecom"] = _seal_values(v, r["telecom"])
    if "text" in r:
        r["text"] = _seal_narrative(v, r["text"])


def _seal_person(v: Vault, r: dict) -> None:
    """Patient / RelatedPerson: who they are is sealed; gender, birth date and prefecture stay for analysis."""
    if "identifier" in r:
        r["identifier"] = _seal_values(v, r["identifier"])
    _seal_who(v, r, ("name", "address", "contact"))
    if "patient" in r:
        r["patient"] = _seal_reference(v, r["patient"])


def _seal_practitioner(v: Vault, r: dict) -> None:
    """Staff are people too: their names and contacts are sealed; the facility-local staff id stays (the
    audit names staff by it, and it identifies no one outside the facility)."""
    _seal_who(v, r, ("name", "address"))


def _seal_coverage(v: Vault, r: dict) -> None:
    if "identifier" in r:
        r["identifier"] = _seal_values(v, r["identifier"])
    for key in ("subscriberId", "dependent"):
        if key in r:
            r[key] = _seal_tree(v, r[key])
    for key in ("beneficiary", "subscriber", "policyHolder"):
        if key in r:
            r[key] = _seal_reference(v, r[key])
    if isinstance(r.get("extension"), list):
        # JP_Coverage_InsuredPersonSymbol / …Number / …SubNumber: the 被保険者証 記号・番号・枝番
        r["extension"] = [_seal_tree(v, e, frozenset({"url"}))
                          if isinstance(e, dict) and "InsuredPerson" in str(e.get("url")) else e
                          for e in r["extension"]]
    if "text" in r:
        r["text"] = _seal_narrative(v, r["text"])


def _seal_consent(v: Vault, r: dict) -> None:
    if "patient" in r:
        r["patient"] = _seal_reference(v, r["patient"])
    if isinstance(r.get("performer"), list):
        r["performer"] = [_seal_reference(v, p) if _names_member(p) else p for p in r["performer"]]


def _names_member(ref: object) -> bool:
    return isinstance(ref, dict) and isinstance(ref.get("identifier"), dict) \
        and ref["identifier"].get("system") == INSURANCE_MEMBER_ID


def _seal_audit_event(v: Vault, r: dict) -> None:
    """The patient is the entity with role 1 (or any entity / agent named by a 被保険者個人識別子)."""
    entities = r.get("entity")
    if isinstance(entities, list):
        sealed = []
        for e in entities:
            if isinstance(e, dict):
                role = e.get("role")
                is_patient = isinstance(role, dict) and role.get("code") == "1"
                if is_patient or _names_member(e.get("what")):
                    e = {**e, "what": _seal_reference(v, e.get("what"))}
                    if "name" in e:
                        e["name"] = _seal_tree(v, e["name"])
            sealed.append(e)
        r["entity"] = sealed
    agents = r.get("agent")
    if isinstance(agents, list):
        r["agent"] = [{**a, "who": _seal_reference(v, a["who"])} if isinstance(a, dict) and _names_member(a.get("who"))
                      else a for a in agents]


_BY_TYPE = {"Patient": _seal_person, "RelatedPerson": _seal_person, "Practitioner": _seal_practitioner,
            "Coverage": _seal_coverage,
            "Consent": _seal_consent, "AuditEvent": _seal_audit_event}
#: where any clinical resource names its patient (by identifier when it does not reference the entry)
_PATIENT_REFERENCES = ("subject", "patient", "beneficiary")
#: references to the staff who wrote, ordered or performed something: their display is a person's name
_STAFF_REFERENCES = ("requester", "recorder", "asserter", "performer", "author", "attester", "informationSource")
_REFERENCES = frozenset(_PATIENT_REFERENCES + _STAFF_REFERENCES)


def seal_resource(resource: object, pseudonym_key: bytes) -> object:
    """The resource with its identifying values sealed (modified in place when it is a dict; returned)."""
    if not isinstance(resource, dict):
        return resource
    _seal_one(vault_for(pseudonym_key), resource)
    contained = resource.get("contained")
    if isinstance(contained, list):
        # a contained Practitioner (prescriber, recorder) or Patient is sealed like an entry
        for inner in contained:
            if isinstance(inner, dict):
                _seal_one(vault_for(pseudonym_key), inner)
    return resource


def _seal_one(v: Vault, resource: dict) -> None:
    walk = _BY_TYPE.get(resource.get("resourceType"))
    if walk is not None:
        walk(v, resource)
        return
    # one set intersection in C: most resources name no one but by fullUrl
    for key in resource.keys() & _REFERENCES:
        ref = resource[key]
        if key in _PATIENT_REFERENCES:
            if isinstance(ref, dict) and ("identifier" in ref or "display" in ref):
                resource[key] = _seal_reference(v, ref)
        else:
            resource[key] = _seal_displays(v, ref)


def _seal_displays(v: Vault, refs: object) -> object:
    """The display of a Reference or of each Reference of a list (attester / performer wrap it one deeper)."""
    if isinstance(refs, list):
        return [_seal_displays(v, r) for r in refs]
    if not isinstance(refs, dict):
        return refs
    refs = {k: (_seal_displays(v, x) if k in ("party", "actor") else x) for k, x in refs.items()}
    if "display" in refs:
        refs["display"] = _seal_tree(v, refs["display"])
    return refs
