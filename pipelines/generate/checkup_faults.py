"""Fault injection for checkup inputs, recorded in `_manifest.json` under `checkup_faults`.

Units: an XML archive (archive-level kinds), a person's CDA document inside an archive (document-level kinds),
and a checkup in either form (item-level kinds, which edit the results before they are written). A unit gets
at most one fault, and an archive with an archive-level fault gets none inside it, so each fault's effect is
observable on its own. As in faults.py, a hit prefers a kind that has not occurred yet, and `generate` forces
the kinds still missing onto clean units at the end.
"""

import random

from pipelines.generate.checkup_values import C, ItemValue, Results
from pipelines.generate.faults import FaultPlanner

#: kind -> (expected rule, expected outcome)
CHECKUP_EXPECTED: dict[str, tuple[str | None, str]] = {
    "checkup_unknown_item": ("K-CHECKUP-ITEM", "quarantine_item"),
    "checkup_out_of_range": ("K-CHECKUP-RANGE", "quarantine_item"),
    "checkup_bmi_mismatch": ("K-CHECKUP-BMI", "quarantine_item"),
    "checkup_bp_swapped": ("K-CHECKUP-BP", "quarantine_item"),
    "checkup_malformed_xml": ("K-XML", "quarantine_document"),
    "checkup_unsafe_xml": ("K-XML-UNSAFE", "quarantine_document"),
    "checkup_missing_header": ("K-CHECKUP", "quarantine_document"),
    "checkup_wrong_count": ("K-CHECKUP-COUNT", "quarantine_file"),
    "checkup_bad_archive_name": ("K-CHECKUP-NAME", "quarantine_file"),
    "checkup_corrupt_zip": ("K-ZIP", "quarantine_file"),
    "checkup_duplicate_archive": (None, "skipped_duplicate_file"),
}
ITEM_KINDS = ["checkup_unknown_item", "checkup_out_of_range", "checkup_bmi_mismatch", "checkup_bp_swapped"]
DOCUMENT_KINDS = ["checkup_malformed_xml", "checkup_unsafe_xml", "checkup_missing_header"]
ARCHIVE_KINDS = ["checkup_wrong_count", "checkup_bad_archive_name", "checkup_corrupt_zip",
                 "checkup_duplicate_archive"]
#: rarest eligible units first when a unit is hit and some kinds have not occurred yet
PRIORITY = ARCHIVE_KINDS + DOCUMENT_KINDS + ITEM_KINDS
#: a 第3期 code for 食べ方1 that the 第4期 list replaced (9N766…): what an outdated sender still writes
OUTDATED_ITEM_CODE = "9N761000000000011"
UNKNOWN_ITEM_CODE = "9N999000000000011"


class CheckupFaultPlanner(FaultPlanner):
    """The ingest fault planner over the checkup fault kinds."""

    def __init__(self, rate: float, rng: random.Random):
        super().__init__(rate, rng, priority=PRIORITY)


def record(kind: str, form: str, file: str, document_id: str | None, item_codes: list[str] | None = None,
           **detail) -> dict:
    rule, outcome = CHECKUP_EXPECTED[kind]
    return {"fault": kind, "form": form, "file": file, "document_id": document_id, "item_codes": item_codes or [],
            "expected_rule": rule, "expected_outcome": outcome, **detail}


# --- item-level edits (on the results, before either writer runs) ---------------------------------------------

def _item(results: Results, key: str) -> ItemValue | None:
    return results.get(key)


def apply_item_fault(kind: str, results: Results, rng: random.Random) -> tuple[list[str], dict]:
    """Edit `results` in place; returns (item codes a correct validator removes, manifest details)."""
    if kind == "checkup_unknown_item":
        target = _item(results, "eating_speed") or next(i for i in results.items if i.value_type == "CD")
        old = target.code
        target.code = OUTDATED_ITEM_CODE if old == C["eating_speed"] else UNKNOWN_ITEM_CODE
        return [target.code], {"replaces": old}
    if kind == "checkup_out_of_range":
        hba1c = _item(results, "hba1c")
        if hba1c is not None:  # the decimal point lost: 5.6 % written as 56
            hba1c.number = round(hba1c.number * 10, 1)
            return [hba1c.code], {"value": hba1c.number, "how": "decimal point lost"}
        glucose = _item(results, "fpg") or _item(results, "rpg")
        glucose.number = round(glucose.number / 18.0, 1)  # mmol/L written where mg/dL is expected
        return [glucose.code], {"value": glucose.number, "how": "mmol/L instead of mg/dL"}
    if kind == "checkup_bmi_mismatch":
        bmi = _item(results, "bmi")
        bmi.number = round(bmi.number + (3.0 if bmi.number < 70 else -3.0), 1)
        return [bmi.code], {"value": bmi.number}
    if kind == "checkup_bp_swapped":
        sbp, dbp = _item(results, "sbp1"), _item(results, "dbp1")
        sbp.number, dbp.number = dbp.number, sbp.number
        sbp.interpretation, dbp.interpretation = dbp.interpretation, sbp.interpretation
        return [sbp.code, dbp.code], {"systolic": sbp.number, "diastolic": dbp.number}
    raise ValueError(kind)


def applicable_item_kinds(results: Results) -> list[str]:
    kinds = ["checkup_unknown_item", "checkup_bmi_mismatch", "checkup_bp_swapped"]
    glucose = _item(results, "fpg") or _item(results, "rpg")
    if _item(results, "hba1c") is not None or (glucose is not None and glucose.number < 360):
        kinds.append("checkup_out_of_range")
    return kinds


# --- document-level edits (on one person's CDA text) --------------------------------------------------------

BILLION_LAUGHS = ('<!DOCTYPE ClinicalDocument [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                            for i in range(1, 10))
                  + "]>")
EXTERNAL_ENTITY = '<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'


def apply_document_fault(kind: str, text: str, rng: random.Random) -> tuple[str, dict]:
    if kind == "checkup_malformed_xml":
        cut = rng.randint(len(text) * 3 // 10, len(text) * 9 // 10)
        return text[:cut], {"kept_chars": cut, "of_chars": len(text)}
    if kind == "checkup_unsafe_xml":
        declaration, rest = text.split("\n", 1)
        billion = rng.random() < 0.5
        doctype, ref = (BILLION_LAUGHS, "&lol9;") if billion else (EXTERNAL_ENTITY, "&xxe;")
        rest = rest.replace("</title>", f"{ref}</title>", 1)
        return f"{declaration}\n{doctype}\n{rest}", {"how": "billion laughs" if billion else "external entity"}
    if kind == "checkup_missing_header":
        field = rng.choice(["birthTime", "administrativeGenderCode", "serviceEvent/effectiveTime"])
        if field == "serviceEvent/effectiveTime":
            start = text.index("<effectiveTime", text.index("<serviceEvent"))
            end = text.index("/>", start) + 2
        else:
            start = text.index(f"<{field} ")
            end = text.index("/>", start) + 2
        return text[:start] + text[end:], {"removed": field}
    raise ValueError(kind)
