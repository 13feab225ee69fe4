"""eCheckupReport FHIR documents (JP_Bundle_eCheckupGeneral, CLINS and generic variants) → common rows.

    checkup_rows(frame, header, carry=()) -> pl.DataFrame   view rows of one or many bundles → rows.ROW_SCHEMA
    bundle_header(bundle) -> dict                      the header of one bundle dict (tests, tools)
    bundle_rows(bundle) / bundles_rows(bundles)        both of the above over bundle dicts

`frame` holds rows of the `checkup_observation` ViewDefinition (pipelines/views/staging/checkup_observation.json).
The header says who was examined, when, where and under which programme; each field is either a column of
`frame` (many bundles: the ingest joins its bundle header into the view rows) or a value in `header` (one
bundle: pass the values). `header` wins when both exist. The fields:

    member_id           保険者番号:記号:番号:枝番 — CLINS variant: the Patient's JP_Insurance_memberID; generic
                        variant: the JP_CoverageInsurance_eCheckupGeneral extensions (InsuredPersonSymbol,
                        InsuredPersonNumber, InsuredPersonSubNumber) with the payor Organization's 保険者番号
                        (urn:oid:1.2.392.100495.20.3.61). NFKC-normalised here either way.
    sex                 Patient.gender
    birth_date          Patient.birthDate
    checkup_date        健診実施日: Encounter.period.start of Composition.encounter (the sample's Composition
                        event period is the report date, not the examination's). Null → the earliest
                        Observation.effectiveDateTime of the document.
    program             Composition.event.code coding of urn:oid:1.2.392.200119.6.1002 (010 特定健診 …)
    institution_number  the custodian Organization's insurance-medical-institution-no (健診機関)
    document_id         Composition.identifier.value (the same number a CDA carries in ClinicalDocument/id)

Group Observations (hasMember, no value of their own) yield no row: their members carry the values.
"""

import functools
from collections.abc import Sequence
from pathlib import Path

import duckdb
import orjson
import polars as pl

from pipelines.checkups import codes
from pipelines.checkups.items import item_frame
from pipelines.checkups.rows import ROW_SCHEMA, conform, member_id, program_name_expr
from pipelines.fhir import systems
from pipelines.views import compile_view, load_view

HEADER_FIELDS = ("member_id", "sex", "birth_date", "checkup_date", "program", "institution_number", "document_id")
VIEW_PATH = Path(__file__).resolve().parent.parent / "views" / "staging" / "checkup_observation.json"


def _header_column(frame: pl.DataFrame, header: dict, name: str) -> pl.Expr:
    if name in header:
        return pl.lit(header[name], dtype=pl.String)
    if name in frame.columns:
        return pl.col(name).cast(pl.String)
    raise KeyError(f"checkup_rows: header field {name!r} is neither in `header` nor a column of the frame")


def _value_type(reference: pl.Expr) -> pl.Expr:
    coded = (pl.when(reference.is_in(["CD", "CO"])).then(reference)
             .when(pl.col("value_has_ordinal").fill_null(False)).then(pl.lit("CO")).otherwise(pl.lit("CD")))
    return (pl.when(pl.col("value_number").is_not_null() | pl.col("value_unit_code").is_not_null()
                    | pl.col("value_unit").is_not_null()).then(pl.lit("PQ"))
            .when(pl.col("value_code").is_not_null()).then(coded)
            .when(pl.col("value_string").is_not_null()).then(pl.lit("ST")))


def checkup_rows(frame: pl.DataFrame, header: dict, carry: Sequence[str] = ()) -> pl.DataFrame:
    """View rows (+ header columns or values, see the module docstring) → the common row shape, followed by the
    `carry` columns of `frame` unchanged (e.g. raw_id, so each row keeps its provenance)."""
    if frame.is_empty():
        return pl.DataFrame(schema={**ROW_SCHEMA, **{c: frame.schema[c] for c in carry}})
    header_cols = {name: _header_column(frame, header, name) for name in HEADER_FIELDS}
    values = ("value_number", "value_unit_code", "value_unit", "value_code", "value_string")
    is_group = pl.col("has_members").fill_null(False) & pl.all_horizontal(pl.col(c).is_null() for c in values)
    rows = (
        frame.filter(~is_group)
        .with_columns(**header_cols)
        .with_columns(
            item_code=pl.coalesce("item_code", "other_code"),
            # one date per document: the header's 健診実施日, else the document's earliest effective date
            checkup_date=pl.coalesce(
                pl.col("checkup_date"),
                pl.col("effective").str.slice(0, 10).min().over(["institution_number", "document_id"])),
            member_id=pl.col("member_id").str.normalize("NFKC").str.strip_chars(),
        )
        .join(item_frame().select("item_code", "reference_name", "reference_value_type"), on="item_code", how="left")
        .with_columns(
            item_name=pl.col("reference_name"),
            value_type=_value_type(pl.col("reference_value_type")),
            value_unit=pl.coalesce("value_unit_code", "value_unit"),
            value_text=pl.col("value_string"),
            program_name=program_name_expr(pl.col("program")),
            source_form=pl.lit("fhir"),
        )
    )
    return pl.concat([conform(rows), rows.select(carry)], how="horizontal")


# --- one bundle (tests, tools; the ingest derives the header from its staging tables) ----------------------

def _by_reference(bundle: dict) -> dict[str, dict]:
    index = {}
    for entry in bundle.get("entry", []):
        res = entry.get("resource", {})
        if entry.get("fullUrl"):
            index[entry["fullUrl"]] = res
        if res.get("id"):
            index[f"{res.get('resourceType')}/{res['id']}"] = res
    return index


def _first(resources: list[dict], rtype: str) -> dict:
    return next((r for r in resources if r.get("resourceType") == rtype), {})


def _identifier(res: dict, system: str) -> str | None:
    return next((i.get("value") for i in res.get("identifier", []) if i.get("system") == system), None)


def _extension(res: dict, url: str) -> str | None:
    return next((x.get("valueString") for x in res.get("extension", []) if x.get("url") == url), None)


def _member_id(resources: list[dict], refs: dict[str, dict]) -> str | None:
    patient = _first(resources, "Patient")
    clins = _identifier(patient, systems.INSURANCE_MEMBER_ID)
    if clins:
        return clins
    for cov in (r for r in resources if r.get("resourceType") == "Coverage"):
        number = _extension(cov, codes.EXT_NUMBER)
        if number is None:
            continue
        payor = refs.get(next(iter(cov.get("payor", [])), {}).get("reference", ""), {})
        return member_id(_identifier(payor, systems.INSURER_NUMBER), _extension(cov, codes.EXT_SYMBOL), number,
                         _extension(cov, codes.EXT_SUBNUMBER))
    return None


def bundle_header(bundle: dict) -> dict:
    """The header fields of one eCheckup bundle (see the module docstring); a field it lacks is None."""
    resources = [e.get("resource", {}) for e in bundle.get("entry", [])]
    refs = _by_reference(bundle)
    comp = _first(resources, "Composition")
    patient = refs.get(comp.get("subject", {}).get("reference", "")) or _first(resources, "Patient")
    encounter = refs.get(comp.get("encounter", {}).get("reference", ""), {})
    custodian = refs.get(comp.get("custodian", {}).get("reference", ""), {})
    program = next((c.get("code") for ev in comp.get("event", []) for cc in ev.get("code", [])
                    for c in cc.get("coding", []) if c.get("system") == codes.PROGRAM_SYSTEM), None)
    institution = _identifier(custodian, systems.INSTITUTION_NO) or next(
        (v for r in resources if r.get("resourceType") == "Organization"
         and (v := _identifier(r, systems.INSTITUTION_NO))), None)
    ident = comp.get("identifier")
    return {
        "member_id": _member_id(resources, refs),
        "sex": patient.get("gender"),
        "birth_date": patient.get("birthDate"),
        "checkup_date": (encounter.get("period", {}).get("start") or "")[:10] or None,
        "program": program,
        "institution_number": institution,
        "document_id": (ident or {}).get("value") if isinstance(ident, dict) else None,
    }


@functools.cache
def _view_sql() -> str:
    return compile_view(load_view(VIEW_PATH), "__observations", carry=("bundle_index",))


def view_frame(observations: list[tuple[int, dict]]) -> pl.DataFrame:
    """The checkup_observation view over (bundle index, Observation) pairs, in an in-memory DuckDB."""
    con = duckdb.connect()
    try:
        source = pl.DataFrame({"bundle_index": [i for i, _ in observations],
                               "resource": [orjson.dumps(o).decode("utf-8") for _, o in observations]},
                              schema={"bundle_index": pl.Int64, "resource": pl.String})
        con.register("__source", source)
        con.execute("CREATE TEMP TABLE __observations AS SELECT bundle_index, resource::JSON AS resource FROM __source")
        return con.sql(_view_sql()).pl()
    finally:
        con.close()


def bundles_rows(bundles: list[dict]) -> pl.DataFrame:
    """Common rows of eCheckup bundle dicts (one DuckDB pass over all their Observations)."""
    observations = [(i, e["resource"]) for i, b in enumerate(bundles) for e in b.get("entry", [])
                    if e.get("resource", {}).get("resourceType") == "Observation"]
    if not observations:
        return pl.DataFrame(schema=ROW_SCHEMA)
    headers = pl.DataFrame([{"bundle_index": i, **bundle_header(b)} for i, b in enumerate(bundles)],
                           schema={"bundle_index": pl.Int64, **{f: pl.String for f in HEADER_FIELDS}})
    return checkup_rows(view_frame(observations).join(headers, on="bundle_index", how="left"), {})


def bundle_rows(bundle: dict) -> pl.DataFrame:
    """Common rows of one eCheckup bundle dict."""
    return bundles_rows([bundle])
