"""The fast FHIR structure check (pipelines/fhir/structure_schema.py) against fhir.resources: the committed
schema is the models' own, valid resources pass both, hand-made bad resources fail both with a path (never a
value), and on mutated generated resources the fast check never passes what fhir.resources rejects."""

import collections
import copy
import json
import random
import re

import orjson
import pytest

from pipelines.bench.ingest import resource_texts
from pipelines.fhir import structure_schema
from pipelines.fhir.structure_schema import NO_RESOURCE, derive_schema, load_schema, structure_problem
from pipelines.generate import generate
from pipelines.ingest.structure import fhir_resources_error
from tests.conftest import EXAMPLES


def test_committed_schema_equals_a_fresh_derivation():
    # after a fhir.resources upgrade: .venv/bin/python -c "from pipelines.fhir.structure_schema import
    # write_schema; write_schema()"
    assert load_schema() == json.loads(json.dumps(derive_schema()))


def test_schema_knows_the_shapes_clins_relies_on():
    types = load_schema()["types"]
    assert types["Observation"]["elements"]["code"] == "CodeableConcept"
    assert types["Observation"]["elements"]["category"] == "CodeableConcept[]"
    assert types["Observation"]["elements"]["effectiveDateTime"] == "dateTime"
    assert types["Observation"]["elements"]["contained"] == "Resource[]"
    assert ["status", "_status"] in types["Observation"]["required_values"]
    assert ["value", False, types["Observation"]["choices"][1][2]] in types["Observation"]["choices"]
    assert types["Condition"]["required"] == ["subject"]
    assert types["Extension"]["required_values"] == [["url", None]]
    assert types["BundleEntry"]["elements"]["resource"] == "Resource"
    assert types["Identifier"]["elements"]["assigner"] == "Reference"
    assert types["HumanName"]["elements"]["given"] == "string[]"
    assert types["HumanName"]["elements"]["_given"] == "FHIRPrimitiveExtension[]"


# ---------------------------------------------------------------------------------------------------------
# Valid resources: the IG's examples and generated data pass both checkers
# ---------------------------------------------------------------------------------------------------------

def _example_resources():
    for path in sorted(EXAMPLES.glob("*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        yield path.name, resource
        for i, entry in enumerate(resource.get("entry", [])):  # what Karte checks: each entry on its own
            yield f"{path.name} entry {i}", entry["resource"]


def test_official_examples_pass_both_checkers(examples):
    checked = 0
    for name, resource in _example_resources():
        assert structure_problem(resource) is None, name
        assert fhir_resources_error(resource) is None, name
        checked += 1
    assert checked > 60


@pytest.fixture(scope="module")
def generated_resources(tmp_path_factory) -> list[dict]:
    inbox = tmp_path_factory.mktemp("structure") / "inbox"
    generate(inbox, facilities=3, patients=30, seed=11, fault_rate=0.0)
    return [orjson.loads(text) for text in resource_texts(inbox)]


def test_generated_resources_pass_both_checkers(generated_resources):
    kinds = collections.Counter(r["resourceType"] for r in generated_resources)
    assert {"Patient", "Observation", "Condition", "Consent", "AuditEvent", "Composition"} <= set(kinds)
    assert [structure_problem(r) for r in generated_resources] == [None] * len(generated_resources)
    assert [fhir_resources_error(r) for r in generated_resources[::5]] == [None] * len(generated_resources[::5])


# ---------------------------------------------------------------------------------------------------------
# Hand-made bad resources: rejected by the fast check with a path, and by fhir.resources too
# ---------------------------------------------------------------------------------------------------------

PATIENT_ID = "00012345:あいう:１８７:05"  # a value that must never appear in a message

OBSERVATION = {
    "resourceType": "Observation", "id": "obs-1", "status": "final",
    "meta": {"lastUpdated": "2025-01-15T19:23:00+09:00", "profile": ["http://jpfhir.jp/fhir/x|1"]},
    "identifier": [{"system": "urn:oid:1.2.392.100495.20.3.51.1", "value": PATIENT_ID}],
    "code": {"coding": [{"system": "http://jpfhir.jp/fhir/core/CodeSystem/JLAC10", "code": "3B035000002327701",
                         "display": "AST"}], "text": "AST"},
    "subject": {"reference": "urn:uuid:59c15b3d-11e3-4e74-a623-b70b2e9794da"},
    "effectiveDateTime": "2025-01-15T14:54:00+09:00",
    "valueQuantity": {"value": 30, "unit": "U/L"},
    "contained": [{"resourceType": "Specimen", "id": "specimen", "type": {"text": "血清"}}],
    "extension": [{"url": "http://jpfhir.jp/fhir/x", "valueIdentifier": {"value": "0311343628"}}],
}


def _with(change) -> dict:
    resource = copy.deepcopy(OBSERVATION)
    change(resource)
    return resource


BAD = [
    # (what is wrong, change, the path the fast check names)
    ("unknown element", lambda r: r.update(colour="red"), "colour"),
    ("unknown nested element", lambda r: r["code"]["coding"][0].update(codeSystem="x"), "code.coding.0.codeSystem"),
    ("array where one value is expected", lambda r: r.update(code=[r["code"]]), "code"),
    ("one value where an array is expected", lambda r: r.update(identifier=r["identifier"][0]), "identifier"),
    ("string where a decimal is expected", lambda r: r["valueQuantity"].update(value="thirty"),
     "valueQuantity.value"),
    ("number where a string is expected", lambda r: r["code"].update(text=5), "code.text"),
    ("empty string", lambda r: r["code"].update(text=""), "code.text"),
    ("blank string (ideographic space)", lambda r: r["code"].update(text="\u3000"), "code.text"),
    ("date with slashes", lambda r: r.update(effectiveDateTime="2025/01/15"), "effectiveDateTime"),
    ("dateTime without a time zone", lambda r: r.update(effectiveDateTime="2025-01-15T14:54:00"),
     "effectiveDateTime"),
    ("a day that does not exist", lambda r: r.update(effectiveDateTime="2025-02-29"), "effectiveDateTime"),
    ("instant without seconds", lambda r: r["meta"].update(lastUpdated="2025-01-15T19:23+09:00"),
     "meta.lastUpdated"),
    ("code with a leading space", lambda r: r.update(status=" final"), "status"),
    ("code with a double space", lambda r: r["code"]["coding"][0].update(code="3B035  01"), "code.coding.0.code"),
    ("id with an underscore", lambda r: r.update(id=PATIENT_ID), "id"),
    ("required primitive missing", lambda r: r.pop("status"), "status"),
    ("required element missing in a backbone", lambda r: r["extension"][0].pop("url"), "extension.0.url"),
    ("wrong type inside a choice", lambda r: r.update(valueQuantity="30 U/L"), "valueQuantity"),
    ("unknown choice type", lambda r: r.update(valueQuantityRange={"low": {}}), "valueQuantityRange"),
    ("two types for one choice", lambda r: r.update(valueString="30"), "value[x]"),
    ("nested bad Identifier", lambda r: r["identifier"][0].update(period={"start": "yesterday"}),
     "identifier.0.period.start"),
    ("bad Identifier in an extension value", lambda r: r["extension"][0]["valueIdentifier"].update(use=5),
     "extension.0.valueIdentifier.use"),
    ("bad contained resource", lambda r: r["contained"][0].update(receivedTime="today"),
     "contained.0.receivedTime"),
    ("contained resource of an unknown type", lambda r: r["contained"][0].update(resourceType="Sample"),
     "contained.0"),
    ("contained element that is not a resource", lambda r: r["contained"].append({"text": "x"}), "contained.1.text"),
    ("null in an array of objects", lambda r: r["identifier"].append(None), "identifier.1"),
    ("empty primitive extension", lambda r: r.update(_status={}), "_status"),
    ("canonical array holding a number", lambda r: r["meta"].update(profile=[1]), "meta.profile.0"),
    ("positiveInt of 0", lambda r: r.update(valueQuantity=None, valueSampledData={
        "origin": {"value": 0}, "period": 1, "dimensions": 0}), "valueSampledData.dimensions"),
    ("integer with a fraction", lambda r: r.update(valueQuantity=None, valueInteger=2.5), "valueInteger"),
]


@pytest.mark.parametrize(("what", "change", "path"), BAD, ids=[b[0] for b in BAD])
def test_bad_resource_rejected_by_both_with_a_path_and_no_value(what, change, path):
    resource = _with(change)
    problem = structure_problem(resource)
    assert problem is not None, what
    assert problem.split(": ", 1)[0] == path
    assert PATIENT_ID not in problem and "30 U/L" not in problem and "thirty" not in problem
    assert fhir_resources_error(resource) is not None, f"fhir.resources accepts {what}"


def test_not_a_resource():
    for value in (None, [], "Observation", {"status": "final"}, {"resourceType": "Sample"},
                  {"resourceType": 5}, {"resourceType": "CodeableConcept"}):
        assert structure_problem(value) == NO_RESOURCE


def test_what_fhir_resources_also_accepts_passes():
    """Where pydantic is lenient the fast check follows it: null elements, empty arrays and objects, nulls in
    primitive arrays, a primitive that is only an extension, an element carrying its own resourceType."""
    for change in (lambda r: r.update(code={}), lambda r: r.update(category=[]), lambda r: r.update(note=None),
                   lambda r: r.update(status=None, _status={"extension": [{"url": "x", "valueCode": "unknown"}]}),
                   lambda r: r["code"]["coding"][0].update(_display={"id": "d"}),
                   lambda r: r["contained"].append({"resourceType": "Patient", "name": [{"given": [None, "花子"],
                                                                                          "_given": [{"id": "a"}, None]}]}),
                   lambda r: r["code"].update(resourceType="CodeableConcept"),
                   lambda r: r["contained"].append({"id": "bare"}),  # no resourceType: a plain Resource
                   lambda r: r.update(fhir_comments=["from the sender"])):
        resource = _with(change)
        assert structure_problem(resource) is None
        assert fhir_resources_error(resource) is None


def test_json_types_are_read_strictly_and_fhir_resources_has_the_last_word():
    """pydantic takes "5" for an integer, 1 for a boolean and a Unix time for a dateTime; FHIR JSON does not.
    The fast check rejects these, which only sends them to fhir.resources (whose verdict is of record)."""
    for change in (lambda r: r["valueQuantity"].update(value="30"), lambda r: r.update(effectiveDateTime=1736920440),
                   lambda r: r["code"]["coding"][0].update(userSelected="true")):
        resource = _with(change)
        assert structure_problem(resource) is not None
        assert fhir_resources_error(resource) is None


# ---------------------------------------------------------------------------------------------------------
# Mutated generated resources: agreement with fhir.resources
# ---------------------------------------------------------------------------------------------------------

CHOICE_KEY = re.compile(r"^(value|effective|onset|abatement|deceased|multipleBirth|occurrence|medication|reported|"
                        r"asNeeded|timing|born|serviced|collected|performed)[A-Z]")
REPLACEMENTS = [0, 1, -1, 2**31, 1.5, "", " ", "x", "true", "5", "2024-01-01", True, False, None, [], {}, "\u3000"]


def _sites(node, out: list) -> list:
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((node, key))
            _sites(value, out)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.append((node, i))
            _sites(value, out)
    return out


def _string_variants(v: str) -> list[str]:
    return [v + " ", " " + v, v + "  x", v[:-1], v + "T10:00:00", v.replace("-", "/"), v[:5] + "13" + v[7:],
            v[:8] + "32" + v[10:], v[:4] + "-02-30", re.sub(r"(Z|[+-]\d\d:\d\d)$", "", v), v[:4] + "-02-29" + v[10:],
            v + "\u3000", "\u00a0", "a_b", "urn:oid:1.2.x", "not base64!"]


def mutate(resource: dict, rng: random.Random) -> dict:
    """`resource` with one random structural change somewhere in it (it may stay valid)."""
    mutant = copy.deepcopy(resource)
    parent, key = rng.choice(_sites(mutant, []))
    value = parent[key]
    op = rng.choice(["drop", "unknown", "replace", "replace", "wrap", "unwrap", "string", "string", "string",
                     "null_in_array", "second_choice", "resource_type"])
    if op == "drop":
        del parent[key]
    elif op == "unknown" and isinstance(parent, dict):
        parent["unknownElement"] = value
    elif op == "wrap":
        parent[key] = [value]
    elif op == "unwrap" and isinstance(value, list) and value:
        parent[key] = value[0]
    elif op == "string" and isinstance(value, str):
        parent[key] = rng.choice(_string_variants(value))
    elif op == "null_in_array" and isinstance(value, list):
        value.append(None)
    elif op == "second_choice" and isinstance(key, str) and CHOICE_KEY.match(key):
        parent[CHOICE_KEY.match(key).group(1) + rng.choice(["String", "Boolean", "Quantity", "DateTime"])] = \
            rng.choice(["x", True, {"value": 1}, "2024"])
    elif op == "resource_type" and isinstance(parent, dict) and "resourceType" in parent:
        parent["resourceType"] = rng.choice(["Sample", "CodeableConcept", "Resource", None, 5])
    else:
        parent[key] = rng.choice(REPLACEMENTS)
    return mutant


def compare(resources: list[dict], mutants: int, seed: int) -> tuple[collections.Counter, list]:
    """Counts of agree_pass / agree_reject / fast_stricter / fast_missed, and the misses."""
    rng = random.Random(seed)
    counts, missed = collections.Counter(), []
    for _ in range(mutants):
        mutant = mutate(rng.choice(resources), rng)
        fast, slow = structure_problem(mutant), fhir_resources_error(mutant)
        if (fast is None) == (slow is None):
            counts["agree_reject" if fast else "agree_pass"] += 1
        elif fast:
            counts["fast_stricter"] += 1
            counts[f"stricter: {fast.split(': ', 1)[1]}"] += 1
        else:
            counts["fast_missed"] += 1
            missed.append((slow, orjson.dumps(mutant)[:400]))
    return counts, missed


STRICT_JSON_TYPES = re.compile(r"expected (a JSON (boolean|number)|a 32-bit JSON integer|a JSON integer ≥ [01]|"
                               r"an? (date|dateTime|instant|time) )")


def test_mutants_agree_with_fhir_resources(generated_resources):
    counts, missed = compare(generated_resources, mutants=1500, seed=2025)
    agreement = (counts["agree_pass"] + counts["agree_reject"]) / 1500
    print(f"fast check vs fhir.resources on 1,500 mutants: {agreement:.2%} agree, "
          f"{counts['fast_stricter']} fast-stricter, {counts['fast_missed']} missed")
    assert missed == []
    assert counts["agree_reject"] > 900 and counts["agree_pass"] > 200  # the mutants test both ways
    assert agreement >= 0.98
    # every disagreement is FHIR JSON read strictly (a number for a date, "5" for a number, 1 for true)
    stricter = [k.removeprefix("stricter: ") for k in counts if k.startswith("stricter: ")]
    assert all(STRICT_JSON_TYPES.match(reason) for reason in stricter), stricter


def test_checker_is_fast_enough(generated_resources):
    """Not a benchmark (see `karte bench --only ingest`): a floor that catches an accidental slow path."""
    import time
    structure_schema.warm_up()
    started = time.perf_counter()
    for resource in generated_resources:
        structure_problem(resource)
    rate = len(generated_resources) / (time.perf_counter() - started)
    assert rate > 5000, f"{rate:,.0f} resources/s"


def test_mutated_official_examples_agree_with_fhir_resources(examples):
    """The IG's examples hold shapes the generator does not (documents, dosage, contained practitioners)."""
    resources = [resource for _, resource in _example_resources()]
    counts, missed = compare(resources, mutants=1000, seed=7)
    assert missed == []
    assert counts["agree_pass"] + counts["agree_reject"] >= 980


def test_nesting_too_deep_for_python_is_a_verdict_not_a_crash():
    resource = {"resourceType": "Patient"}
    for _ in range(2000):  # the reader refuses JSON deeper than 254 levels; this checks the checker alone
        resource = {"resourceType": "Patient", "contained": [resource]}
    assert structure_problem(resource) == "nested too deep to check"
