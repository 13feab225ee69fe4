"""The compiled fast-accept (pipelines/fhir/structure_compiled.py) in front of the Python structure check: it
accepts only what the Python walk accepts (soundness, on the mutation corpus of test_structure_schema and on
hand-made cases for every rule it reads more strictly), it accepts nearly everything valid (else the fast path
silently becomes the slow one), and structure_problem's verdicts and messages are the walk's."""

import random
from datetime import date

import msgspec
import pytest

from pipelines.fhir import structure_compiled
from pipelines.fhir.structure_compiled import accepts
from pipelines.fhir.structure_schema import PRIMITIVES, structure_problem, walk_problem, warm_up
from tests.ingest.test_structure_schema import (
    BAD,
    OBSERVATION,
    _example_resources,
    _with,
    generated_resources,  # noqa: F401 (the fixture, shared)
    mutate,
)


def _mutants(resources: list[dict], count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [mutate(rng.choice(resources), rng) for _ in range(count)]


def _assert_sound_and_unchanged(mutants: list[dict]) -> int:
    """Compiled accept ⇒ the walk finds nothing; structure_problem says what the walk says. Returns how many
    mutants the compiled check accepted."""
    accepted = 0
    for mutant in mutants:
        walked = walk_problem(mutant)
        if accepts(mutant):
            accepted += 1
            assert walked is None, f"compiled check accepts what the walk rejects: {walked}"
        assert structure_problem(mutant) == walked
    return accepted


# ---------------------------------------------------------------------------------------------------------
# Soundness on the mutation corpus
# ---------------------------------------------------------------------------------------------------------

def test_mutated_generated_resources(generated_resources):  # noqa: F811 (the imported fixture)
    mutants = _mutants(generated_resources, 4000, seed=71)
    accepted = _assert_sound_and_unchanged(mutants)
    valid = sum(walk_problem(m) is None for m in mutants)
    assert valid > 800 and accepted > 0.8 * valid, (accepted, valid)  # both sides of the check exercised


def test_mutated_official_examples(examples):
    mutants = _mutants([resource for _, resource in _example_resources()], 3000, seed=72)
    assert _assert_sound_and_unchanged(mutants) > 500


@pytest.mark.parametrize(("what", "change", "path"), BAD, ids=[b[0] for b in BAD])
def test_hand_made_bad_resources_are_not_accepted(what, change, path):
    resource = _with(change)
    assert not accepts(resource), what
    assert structure_problem(resource).split(": ", 1)[0] == path


# ---------------------------------------------------------------------------------------------------------
# Each rule read more strictly than the walk: not accepted here, the walk's verdict stands
# ---------------------------------------------------------------------------------------------------------

def _set(path: str, value):
    """A change that sets OBSERVATION's element at a dotted path (list indexes as numbers)."""
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]

    def change(resource):
        node = resource
        for key in parents:
            node = node[key]
        node[last] = value
    return change


def _bundle_with(entry_resource) -> dict:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": entry_resource}]}


EXT = {"extension": [{"url": "http://example.org/reason", "valueCode": "unknown"}]}
DEEP = {"resourceType": "Patient"}
for _ in range(2000):  # deeper than Python's recursion limit: the walk says so, the compiled check must not crash
    DEEP = {"resourceType": "Patient", "contained": [DEEP]}

STRICTER = [
    # (what, resource, whether the walk accepts it)
    ("null for an element", _with(_set("note", None)), True),
    ("null for a nested element", _with(_set("code.text", None)), True),
    ("required value given only as an extension", _with(lambda r: (r.pop("status"), r.update(_status=EXT))), True),
    ("required value null, with an extension", _with(lambda r: r.update(status=None, _status=EXT)), True),
    ("two types for value[x]", _with(_set("valueString", "30")), False),
    ("two types for effective[x]", _with(_set("effectivePeriod", {"start": "2025-01-15"})), False),
    ("February 29 of a leap year", _with(_set("effectiveDateTime", "2024-02-29T10:00:00+09:00")), True),
    ("February 29 of a common year", _with(_set("effectiveDateTime", "2025-02-29")), False),
    ("February 30", _with(_set("effectiveDateTime", "2024-02-30")), False),
    ("April 31", _with(_set("issued", "2024-04-31T10:00:00+09:00")), False),
    ("a code with a leading space", _with(_set("status", " final")), False),
    ("a code with an ideographic space around it", _with(_set("code.coding.0.code", "\u3000血清")), False),
    ("an id with an underscore", _with(_set("id", "obs_1")), False),
    ("an id of 256 characters", _with(_set("id", "a" * 256)), False),
    ("a bad oid", {"resourceType": "Patient", "extension": [
        {"url": "http://example.org/x", "valueOid": "urn:oid:1.02"}]}, False),
    ("an instant without seconds", _with(_set("meta.lastUpdated", "2025-01-15T19:23+09:00")), False),
    ("an instant without a zone", _with(_set("meta.lastUpdated", "2025-01-15T19:23:00")), False),
    ("an integer above 32 bits", _with(lambda r: r.update(valueQuantity=None, valueInteger=2**31)), False),
    ("a bool for an integer", _with(lambda r: r.update(valueQuantity=None, valueInteger=True)), False),
    ("5.0 for an integer", _with(lambda r: r.update(valueQuantity=None, valueInteger=5.0)), False),
    ("a bool for a decimal", _with(_set("valueQuantity.value", True)), False),
    ("1 for a boolean", _with(_set("code.coding.0.userSelected", 1)), False),
    ("a string for a boolean", _with(_set("code.coding.0.userSelected", "true")), False),
    ("an unknown element", _with(_set("colour", "red")), False),
    ("an unknown element in a contained resource", _with(_set("contained.0.colour", "red")), False),
    ("a contained resource of an unknown type", _with(_set("contained.0.resourceType", "Sample")), False),
    ("a contained data type", _with(_set("contained.0.resourceType", "CodeableConcept")), False),
    ("a contained resource without resourceType", _with(lambda r: r["contained"].append({"id": "bare"})), True),
    ("a complex type carrying its own name", _with(_set("code.resourceType", "CodeableConcept")), True),
    ("an entry of an unknown type", _bundle_with({"resourceType": "Sample"}), False),
    ("an entry that is a data type", _bundle_with({"resourceType": "CodeableConcept", "text": "x"}), False),
    ("an entry that is a bad Observation", _bundle_with({**OBSERVATION, "status": 5}), False),
    ("a blank string of one space", _with(_set("code.text", " ")), True),
    ("a blank string of an ideographic space", _with(_set("code.text", "\u3000")), False),
    ("an empty string", _with(_set("code.text", "")), False),
    ("an empty _element object", _with(_set("_status", {})), False),
    ("base64 with a newline", {"resourceType": "Binary", "contentType": "text/plain", "data": "aGk=\n"}, True),
    ("base64 without its padding", {"resourceType": "Binary", "contentType": "text/plain", "data": "aGk"}, False),
    ("fhir_comments null", _with(_set("fhir_comments", None)), True),
    ("nested too deep for Python", DEEP, False),
]


@pytest.mark.parametrize(("what", "resource", "walk_accepts"), STRICTER, ids=[s[0] for s in STRICTER])
def test_stricter_than_the_walk_only_falls_back(what, resource, walk_accepts):
    assert not accepts(resource), what
    assert (walk_problem(resource) is None) is walk_accepts
    assert structure_problem(resource) == walk_problem(resource)


def test_japanese_text_is_accepted():
    resource = _with(lambda r: (r["code"].update(text="血清クレアチニン　（酵素法）"),
                                r["contained"][0]["type"].update(text="　血清"),  # a string may start with U+3000
                                r.update(note=[{"text": "再検査を推奨します。\n担当：山田"}])))
    assert accepts(resource)
    assert walk_problem(resource) is None


def test_valid_forms_the_compiled_types_must_take():
    """Shapes valid FHIR uses that a careless compiled type would refuse (sending them all to the slow path)."""
    for change in (_set("valueQuantity.value", 30.5), _set("valueQuantity.value", 30),
                   _set("effectiveDateTime", "2025"), _set("effectiveDateTime", "2025-01"),
                   _set("effectiveDateTime", "2024-12-31T23:59:60.123Z"), _set("issued", "2025-01-31T00:00:00-05:00"),
                   _set("code.coding.0._display", {"id": "d"}), _set("category", []), _set("code", {}),
                   _set("fhir_comments", ["from the sender"]), _set("fhir_comments", "from the sender"),
                   lambda r: (r.pop("valueQuantity"), r.update(valueInteger=-5)),
                   lambda r: r["contained"].append({"resourceType": "Patient", "name": [
                       {"given": [None, "花子"], "_given": [{"id": "a"}, None]}]})):
        resource = _with(change)
        assert walk_problem(resource) is None
        assert accepts(resource), resource


# ---------------------------------------------------------------------------------------------------------
# Effectiveness: the fast path takes (nearly) every valid resource
# ---------------------------------------------------------------------------------------------------------

def test_accepts_the_generated_resources(generated_resources):  # noqa: F811 (the imported fixture)
    valid = [r for r in generated_resources if walk_problem(r) is None]
    accepted = sum(accepts(r) for r in valid)
    assert len(valid) == len(generated_resources) > 500
    assert accepted / len(valid) >= 0.995, f"{accepted} of {len(valid)}"


def test_accepts_the_official_examples(examples):
    valid = [r for _, r in _example_resources() if walk_problem(r) is None]
    accepted = sum(accepts(r) for r in valid)
    assert len(valid) > 60
    assert accepted / len(valid) >= 0.98, f"{accepted} of {len(valid)}"


def test_warm_up_builds_the_compiled_types():
    warm_up()
    assert structure_compiled.built()
    assert set(structure_compiled.WARM_TYPES) <= set(structure_compiled.compiled_types())
    assert "CodeableConcept" not in structure_compiled.compiled_types()  # resources only


IMMUNIZATION = {"resourceType": "Immunization", "status": "completed", "vaccineCode": {"text": "インフルエンザＨＡワクチン"},
                "patient": {"reference": "urn:uuid:59c15b3d-11e3-4e74-a623-b70b2e9794da"},
                "occurrenceDateTime": "2024-11-01"}


def test_a_type_outside_the_warm_ones_is_built_when_first_met():
    """Only the types JP-CLINS carries are built up front; another is built where it is first checked, and
    judged as strictly: at the top and nested in `contained`."""
    warm_up()
    assert "Immunization" not in structure_compiled.WARM_TYPES
    assert accepts(IMMUNIZATION) and walk_problem(IMMUNIZATION) is None
    assert "Immunization" in structure_compiled.compiled_types()
    bad = {**IMMUNIZATION, "occurrenceDateTime": "2024-11-01T25:00:00+09:00"}
    assert not accepts(bad) and walk_problem(bad).startswith("occurrenceDateTime: expected a dateTime")
    device = {"resourceType": "Device", "id": "pump", "deviceName": [{"name": "輸液ポンプ", "type": "user-friendly-name"}]}
    assert "Device" not in structure_compiled.WARM_TYPES
    nested = _with(lambda r: r["contained"].append(device))
    assert accepts(nested) and walk_problem(nested) is None
    for broken in ({**device, "deviceName": [{"name": 5, "type": "user-friendly-name"}]},
                   {**device, "colour": "red"}, {"id": "no-type"}, {"resourceType": "CodeableConcept"}, "Device/pump"):
        resource = _with(lambda r, b=broken: r["contained"].append(b))
        assert not accepts(resource), broken
        assert structure_problem(resource) == walk_problem(resource)


def test_seen_values_stay_bounded_and_never_hold_strings():
    warm_up()
    string_type = structure_compiled._P["string"]
    assert string_type.seen is None  # names and identifier values are not kept
    code_type = structure_compiled._P["code"]
    for i in range(structure_compiled.SEEN_LIMIT + 10):
        structure_compiled._check_text(code_type, f"c{i}")
    assert len(code_type.seen) <= structure_compiled.SEEN_LIMIT
    with pytest.raises(ValueError):
        structure_compiled._check_text(code_type, " c1")


# ---------------------------------------------------------------------------------------------------------
# Primitive by primitive: the compiled check of a value never takes what structure_schema.PRIMITIVES refuses
# ---------------------------------------------------------------------------------------------------------

WHITESPACE = [chr(c) for c in range(0x110000) if chr(c).isspace()] + ["\x00", "\u200b"]
FRAGMENTS = ["2024", "2025", "1900", "0000", "-", "01", "02", "12", "13", "28", "29", "30", "31", "32", "T", "10:00:00",
             "23:59:60", "24:00:00", ".5", "Z", "+09:00", "-14:00", "+14:00", "urn:oid:", "1.2", ".0", ".05", "urn:uuid:",
             "0f0e4a1c-9b2d-4c3e-8f7a-1b2c3d4e5f60", "4", "aGk=", "aGk", "==", "/+", "final", "a", "血清", "_", "$", ""]


VALID = {"string": "血清", "code": "final", "id": "obs-1.A", "oid": "urn:oid:1.2.392.100495", "time": "23:59:60.5",
         "uuid": "urn:uuid:0f0e4a1c-9b2d-4c3e-8f7a-1b2c3d4e5f60", "base64Binary": "aGk=", "date": "2024-02-28",
         "dateTime": "2024-12-31T23:59:59.999+14:00", "instant": "2025-01-15T19:23:00Z"}


def _candidates(kind: str, rng: random.Random, count: int) -> list[str]:
    """Values assembled from fragments, and the kind's valid value with a random piece cut out or put in."""
    pieces = FRAGMENTS + WHITESPACE
    made = ["".join(rng.choice(pieces) if rng.random() < 0.15 else rng.choice(FRAGMENTS)
                    for _ in range(rng.randint(0, 6))) for _ in range(count)]
    valid = VALID[kind]
    for _ in range(count):
        i, j = sorted(rng.randrange(len(valid) + 1) for _ in range(2))
        made.append(valid[:i] + rng.choice(["", rng.choice(pieces)]) + valid[j:])
    return made


@pytest.mark.parametrize("kind", sorted(structure_compiled.TEXT_FORMATS))
def test_text_formats_are_at_least_as_strict(kind):
    warm_up()
    text_type = structure_compiled._P[kind]
    python_accepts = PRIMITIVES[kind][0]
    candidates = _candidates(kind, random.Random(kind), 3000) + WHITESPACE + [w + "a" for w in WHITESPACE]
    structure_compiled._check_text(text_type, VALID[kind])  # taken
    taken = 0
    for value in candidates:
        try:
            structure_compiled._check_text(text_type, value)
        except ValueError:
            continue
        taken += 1
        assert python_accepts(value), f"{kind}: compiled takes {value!r}"
    assert taken > 10  # the near misses test both sides


def test_calendar_days_exactly_except_february_29():
    warm_up()
    for kind, suffix in (("date", ""), ("dateTime", ""), ("dateTime", "T12:00:00+09:00"), ("instant", "T12:00:00Z")):
        python_accepts = PRIMITIVES[kind][0]
        text_type = structure_compiled._P[kind]
        for year in (1900, 2000, 2023, 2024):
            for month in range(14):
                for day in range(33):
                    value = f"{year}-{month:02d}-{day:02d}{suffix}"
                    try:
                        structure_compiled._check_text(text_type, value)
                        taken = True
                    except ValueError:
                        taken = False
                    try:
                        real = date(year, month, day) is not None
                    except ValueError:
                        real = False
                    assert not taken or python_accepts(value), value
                    assert taken == (real and (month, day) != (2, 29)), value


NATIVE_VALUES = [0, 1, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**70, 5.0, 2.5, True, False, "5", "true", None, [],
                 {}]


@pytest.mark.parametrize("kind", sorted(structure_compiled.NATIVE_TYPES))
def test_native_types_are_at_least_as_strict(kind):
    python_accepts = PRIMITIVES[kind][0]
    for value in NATIVE_VALUES + ["", " ", "x"]:
        try:
            msgspec.convert(value, structure_compiled.NATIVE_TYPES[kind])
        except msgspec.ValidationError:
            continue
        assert python_accepts(value), f"{kind}: compiled takes {value!r}"


def test_the_compiled_check_is_built_only_for_a_batch_that_repays_it(tmp_path):
    """A small increment walks (building the types costs more than it saves); warm_up, which the raw step calls
    for a large batch before its pool forks, turns the compiled check on."""
    import subprocess
    import sys

    code = """
from pipelines.fhir import structure_compiled, structure_schema
patient = {"resourceType": "Patient", "gender": "female", "name": [{"text": "山田 花子"}]}
assert structure_schema.structure_problem(patient) is None
print(structure_compiled.built())
structure_schema.warm_up()
assert structure_schema.structure_problem(patient) is None
print(structure_compiled.built())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
