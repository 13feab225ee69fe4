"""Unit tests of the ViewDefinition → DuckDB compiler on small JP-CLINS-like resources."""

from __future__ import annotations

import json

import duckdb
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipelines.views import ViewError, compile_view, load_view

MEDIS = "http://medis.or.jp/CodeSystem/master-disease-keyNumber"
INSTITUTION = "http://jpfhir.jp/fhir/clins/Extension/StructureDefinition/JP_eCS_InstitutionNumber"

PATIENT = {
    "resourceType": "Patient",
    "id": "患者-001",
    "active": True,
    "name": [
        {
            "use": "official",
            "family": "山田",
            "given": ["太郎"],
            "extension": [
                {
                    "url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation",
                    "valueCode": "IDE",
                }
            ],
        },
        {"use": "usual", "family": "ヤマダ", "given": ["タロウ", "Ｔａｒｏ"]},
    ],
    "gender": "male",
    "birthDate": "1970-06-15",
}
CONDITION = {
    "resourceType": "Condition",
    "id": "cond-1",
    "meta": {"tag": [{"code": "LTS"}, {"code": "緊急"}]},
    "extension": [{"url": INSTITUTION, "valueIdentifier": {"value": "1312345678"}}],
    "code": {
        "coding": [
            {"system": "http://jpfhir.jp/fhir/core/CodeSystem/JP_ICD10", "code": "I10"},
            {"system": MEDIS, "code": "20054321", "display": "本態性高血圧症"},
        ],
        "text": "高血圧症（本態性）",
    },
    "subject": {"reference": "urn:uuid:0a1b2c3d-0000-4000-8000-000000000001"},
    "onsetDateTime": "2020-04-01T09:00:00+09:00",
    "contained": [{"resourceType": "Encounter", "id": "enc", "status": "finished"}],
}
OBSERVATION = {
    "resourceType": "Observation",
    "id": "obs-1",
    "status": "final",
    "code": {"text": "HbA1c"},
    "valueQuantity": {"value": 6.2, "unit": "%"},
}


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("CREATE TABLE raw_resource (raw_id BIGINT, source_file VARCHAR, resource JSON)")
    for i, resource in enumerate([PATIENT, CONDITION, OBSERVATION], start=1):
        con.execute(
            "INSERT INTO raw_resource VALUES (?, ?, ?)",
            [i, f"受信/{i}.json", json.dumps(resource, ensure_ascii=False)],
        )
    yield con
    con.close()


def rows(con, view, source="raw_resource", **kwargs):
    cursor = con.execute(compile_view(view, source, **kwargs))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def column_types(con, view):
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {compile_view(view, 'raw_resource')}").fetchall()}


# -- values ------------------------------------------------------------------------------------------


def test_japanese_strings_pass_through_unchanged(con):
    view = {
        "resource": "Patient",
        "select": [
            {
                "column": [
                    {"name": "id", "path": "getResourceKey()"},
                    {"name": "kanji", "path": "name.where(use = 'official').family.first()"},
                    {"name": "kana_given", "path": "name.where(family = 'ヤマダ').given.join('　')"},
                    {"name": "is_yamada", "path": "name.family.first() = '山田'", "type": "boolean"},
                ]
            }
        ],
    }
    assert rows(con, view) == [
        {"id": "患者-001", "kanji": "山田", "kana_given": "タロウ　Ｔａｒｏ", "is_yamada": True}
    ]


def test_example_condition_view(con):
    view = {
        "resource": "Condition",
        "select": [
            {
                "column": [
                    {"name": "id", "path": "getResourceKey()"},
                    {"name": "medis", "path": f"code.coding.where(system='{MEDIS}').code.first()"},
                    {
                        "name": "inst",
                        "path": f"extension('{INSTITUTION}').value.ofType(Identifier).value.first()",
                    },
                    {"name": "has_enc", "path": "contained.ofType(Encounter).exists()", "type": "boolean"},
                    {"name": "subject", "path": "subject.getReferenceKey()"},
                    {"name": "onset", "path": "onset.ofType(dateTime)", "type": "dateTime"},
                ]
            },
            {
                "forEach": "meta.tag",
                "column": [{"name": "tag", "path": "code"}, {"name": "n", "path": "%rowIndex"}],
            },
        ],
    }
    common = {
        "id": "cond-1",
        "medis": "20054321",
        "inst": "1312345678",
        "has_enc": True,
        "subject": "0a1b2c3d-0000-4000-8000-000000000001",
        "onset": "2020-04-01T09:00:00+09:00",
    }
    assert rows(con, view) == [{**common, "tag": "LTS", "n": 0}, {**common, "tag": "緊急", "n": 1}]


def test_plain_choice_element_and_constants(con):
    view = {
        "resource": "Observation",
        "constant": [{"name": "limit", "valueDecimal": 6.5}, {"name": "label", "valueString": "検査値"}],
        "select": [
            {
                "column": [
                    {"name": "value", "path": "value.value", "type": "decimal"},
                    {"name": "below", "path": "value.ofType(Quantity).value < %limit", "type": "boolean"},
                    {"name": "label", "path": "%label"},
                ]
            }
        ],
    }
    assert rows(con, view) == [{"value": 6.2, "below": True, "label": "検査値"}]


def test_carry_columns_come_first_and_unchanged(con):
    view = {
        "resource": "Patient",
        "select": [{"forEach": "name", "column": [{"name": "family", "path": "family"}]}],
    }
    result = rows(con, view, carry=("raw_id", "source_file"))
    assert [list(r) for r in result] == [["raw_id", "source_file", "family"]] * 2
    assert {(r["raw_id"], r["source_file"]) for r in result} == {(1, "受信/1.json")}


def test_source_may_be_a_subquery(con):
    view = {"resource": "Condition", "select": [{"column": [{"name": "id", "path": "id"}]}]}
    assert rows(con, view, source="(SELECT resource FROM raw_resource WHERE raw_id > 1)") == [
        {"id": "cond-1"}
    ]


def test_where_filters_resources(con):
    view = {
        "resource": "Patient",
        "where": [{"path": "name.family.first() = '山田'"}],
        "select": [{"column": [{"name": "id", "path": "id"}]}],
    }
    assert rows(con, view) == [{"id": "患者-001"}]
    view["where"] = [{"path": "gender = 'female'"}]
    assert rows(con, view) == []


# -- output types --------------------------------------------------------------------------------------


def test_output_column_types(con):
    view = {
        "resource": "Patient",
        "select": [
            {
                "column": [
                    {"name": "id", "path": "id", "type": "id"},
                    {"name": "active", "path": "active", "type": "boolean"},
                    {"name": "names", "path": "name.count()", "type": "integer"},
                    {"name": "half", "path": "name.count() / 4", "type": "decimal"},
                    {"name": "born", "path": "birthDate", "type": "date"},
                    {"name": "given", "path": "name.given", "type": "string", "collection": True},
                    {"name": "untyped", "path": "gender"},
                    {"name": "has_name", "path": "name.exists()"},
                    {"name": "first_name", "path": "name.first()", "type": "HumanName"},
                ]
            }
        ],
    }
    assert column_types(con, view) == {
        "id": "VARCHAR",
        "active": "BOOLEAN",
        "names": "BIGINT",
        "half": "DOUBLE",
        "born": "VARCHAR",
        "given": "VARCHAR[]",
        "untyped": "VARCHAR",
        "has_name": "BOOLEAN",
        "first_name": "JSON",
    }
    (row,) = rows(con, view)
    assert row["given"] == ["太郎", "タロウ", "Ｔａｒｏ"]
    assert row["half"] == 0.5
    assert json.loads(row["first_name"])["family"] == "山田"


def test_many_values_in_a_single_column_fail_at_query_time(con):
    view = {"resource": "Patient", "select": [{"column": [{"name": "family", "path": "name.family"}]}]}
    with pytest.raises(duckdb.Error, match="column 'family'.*more than one value"):
        rows(con, view)


def test_repeat_deeper_than_the_limit_is_an_error_not_a_silent_cut(con):
    item: dict = {"linkId": "leaf"}
    for depth in range(14):
        item = {"linkId": f"L{depth}", "item": [item]}
    con.execute(
        "INSERT INTO raw_resource VALUES (9, 'qr', ?)",
        [json.dumps({"resourceType": "QuestionnaireResponse", "id": "qr", "item": [item]})],
    )
    view = {
        "resource": "QuestionnaireResponse",
        "select": [{"repeat": ["item"], "column": [{"name": "link", "path": "linkId"}]}],
    }
    with pytest.raises(duckdb.Error, match="nested deeper than"):
        rows(con, view)


def _nested_items(levels: int) -> dict:
    """A QuestionnaireResponse whose items nest `levels` deep (L1 holds L2 ... holds L<levels>)."""
    item: dict = {"linkId": f"L{levels}", "text": "葉"}
    for depth in range(levels - 1, 0, -1):
        item = {"linkId": f"L{depth}", "text": f"第{depth}層", "item": [item]}
    return {"resourceType": "QuestionnaireResponse", "id": f"qr-{levels}", "item": [item]}


@pytest.mark.parametrize("levels", [1, 3, 12])
def test_repeat_follows_every_level_up_to_the_limit_in_pre_order(con, levels):
    con.execute("INSERT INTO raw_resource VALUES (9, 'qr', ?)", [json.dumps(_nested_items(levels), ensure_ascii=False)])
    view = {"resource": "QuestionnaireResponse",
            "select": [{"repeat": ["item"], "column": [{"name": "link", "path": "linkId"},
                                                       {"name": "text", "path": "text"}]}]}
    assert [(r["link"], r["text"]) for r in rows(con, view)] == \
        [(f"L{d}", f"第{d}層" if d < levels else "葉") for d in range(1, levels + 1)]


def test_repeat_reads_an_element_that_contains_itself_from_the_typed_parse():
    """Composition.section, QuestionnaireResponse.item: the levels come from the one typed parse of the resource
    (the staging document_section view: 122–139 → 38–54 ms on the bench sample); several paths, or an element of
    another type below, keep the JSON form."""
    def sql(resource, paths, column):
        return compile_view({"resource": resource, "select": [{"repeat": paths, "column": [
            {"name": "c", "path": column}]}]}, "src")

    assert "struct_pack" in sql("Composition", ["section"], "title")
    assert "struct_pack" in sql("QuestionnaireResponse", ["item"], "linkId")
    assert "struct_pack" not in sql("QuestionnaireResponse", ["item", "answer.item"], "linkId")
    assert "struct_pack" not in sql("Composition", ["entry"], "reference")  # a Reference holds no entry


def test_one_level_past_the_limit_is_an_error(con):
    con.execute("INSERT INTO raw_resource VALUES (9, 'qr', ?)", [json.dumps(_nested_items(13), ensure_ascii=False)])
    view = {"resource": "QuestionnaireResponse",
            "select": [{"repeat": ["item"], "column": [{"name": "link", "path": "linkId"}]}]}
    with pytest.raises(duckdb.Error, match=r"select\[0\]\.repeat: data nested deeper than 12 levels"):
        rows(con, view)


def test_a_repeat_whose_columns_read_the_recursive_element_gives_the_same_rows(con):
    con.execute("INSERT INTO raw_resource VALUES (9, 'qr', ?)", [json.dumps(_nested_items(3), ensure_ascii=False)])
    view = {"resource": "QuestionnaireResponse",
            "select": [{"repeat": ["item"], "column": [{"name": "link", "path": "linkId"},
                                                       {"name": "below", "path": "item.count()"}]}]}
    assert [(r["link"], r["below"]) for r in rows(con, view)] == [("L1", 1), ("L2", 1), ("L3", 0)]


# -- invalid views --------------------------------------------------------------------------------------


def test_error_names_the_failing_place():
    view = {
        "resource": "Patient",
        "select": [
            {
                "column": [
                    {"name": "a", "path": "id"},
                    {"name": "b", "path": "id"},
                    {"name": "c", "path": "name.foo()"},
                ]
            }
        ],
    }
    with pytest.raises(ViewError) as info:
        compile_view(view, "t")
    assert str(info.value) == "select[0].column[2].path: unknown function 'foo()' in \"name.foo()\""


@pytest.mark.parametrize(
    ("view", "message"),
    [
        ({}, "resource: required"),
        ({"resource": "Patient"}, "select: required"),
        ({"resource": "Patient", "select": {"column": []}}, "select: must be a non-empty list"),
        ({"resource": "Patient", "select": [{"forEach": 1}]}, "select[0].forEach: must be a FHIRPath string"),
        (
            {"resource": "Patient", "select": [{"forEach": "@@"}]},
            "select[0].forEach: unexpected character '@'",
        ),
        (
            {"resource": "Patient", "select": [{"column": [{"name": "患者", "path": "id"}]}]},
            "select[0].column[0].name: must match",
        ),
        (
            {
                "resource": "Patient",
                "select": [
                    {"column": [{"name": "a", "path": "id"}]},
                    {"column": [{"name": "a", "path": "gender"}]},
                ],
            },
            "column 'a' is defined more than once",
        ),
        (
            {
                "resource": "Patient",
                "select": [
                    {
                        "unionAll": [
                            {"column": [{"name": "a", "path": "id"}]},
                            {"column": [{"name": "b", "path": "id"}]},
                        ]
                    }
                ],
            },
            "select[0].unionAll[1]: columns ['b'] differ",
        ),
        (
            {
                "resource": "Patient",
                "select": [{"column": [{"name": "a", "path": "name.where(use = %nope)"}]}],
            },
            "undefined constant '%nope'",
        ),
        (
            {
                "resource": "Patient",
                "constant": [{"name": "x"}],
                "select": [{"column": [{"name": "a", "path": "id"}]}],
            },
            "constant[0]: needs exactly one value[x]",
        ),
        (
            {
                "resource": "Patient",
                "select": [{"column": [{"name": "a", "path": "id"}]}],
                "where": [{"path": "'x'"}],
            },
            "where[0].path: does not evaluate to a boolean in \"'x'\"",
        ),
        ({"resource": "Patient", "select": [{"forEach": "name", "forEachOrNull": "name"}]}, "only one of"),
        ({"resource": "Patient", "select": [{"forEach": "name"}]}, "select[0]: defines no column"),
    ],
)
def test_invalid_views_raise_view_error(view, message):
    with pytest.raises(ViewError) as info:
        compile_view(view, "t")
    assert message in str(info.value)


def test_carry_must_not_collide_with_view_columns():
    view = {"resource": "Patient", "select": [{"column": [{"name": "raw_id", "path": "id"}]}]}
    with pytest.raises(ViewError, match="carry: column 'raw_id'"):
        compile_view(view, "t", carry=["raw_id"])


def test_load_view_reads_utf8_and_names_the_file_on_error(tmp_path):
    good = tmp_path / "患者.json"
    view = {
        "resource": "Patient",
        "title": "患者一覧",
        "select": [{"column": [{"name": "id", "path": "id"}]}],
    }
    good.write_text(json.dumps(view, ensure_ascii=False), encoding="utf-8")
    assert load_view(good) == view

    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ViewError, match="broken.json"):
        load_view(broken)

    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"select": []}), encoding="utf-8")
    with pytest.raises(ViewError, match=r"invalid\.json: resource: required"):
        load_view(invalid)


# -- property: any text survives the trip through JSON, SQL literals and back --------------------------


@settings(max_examples=40, deadline=None)
@example(family="0", literal="\x00")  # NUL ends a SQL string literal unless spliced in
@given(family=st.text(min_size=1, max_size=20), literal=st.text(max_size=10))
def test_text_round_trips(family, literal):
    con = duckdb.connect()
    con.execute("CREATE TABLE r (resource JSON)")
    con.execute(
        "INSERT INTO r VALUES (?)",
        [json.dumps({"resourceType": "Patient", "name": [{"family": family}]}, ensure_ascii=False)],
    )
    view = {
        "resource": "Patient",
        "constant": [{"name": "lit", "valueString": literal}],
        "select": [
            {
                "column": [
                    {"name": "family", "path": "name.family.first()"},
                    {"name": "same", "path": "name.family.first() = %lit", "type": "boolean"},
                    {"name": "lit", "path": "%lit"},
                ]
            }
        ],
    }
    assert con.execute(compile_view(view, "r")).fetchall() == [(family, family == literal, literal)]
