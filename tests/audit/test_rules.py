"""Each audit rule on a hand-built warehouse: the edge cases the generator does not produce (no role, an unknown
role, no kind recorded, an identifier without its institution, consent periods and grantees, care through a
referral, as-of cut-offs), called through the pure functions directly."""

import json
from datetime import date

import pytest

from pipelines.audit.findings import compute_findings
from pipelines.audit.window import AuditWindow, AuditWindowError, resolve_window
from pipelines.consent.intervals import derive_consent_intervals
from pipelines.warehouse import connect, set_watermark

A, B = "1311111111", "2711111111"  # facilities
P, Q = "a" * 64, "b" * 64  # patients
AS_OF = date(2025, 6, 30)


def _consent(con, consent_id, patient, when, status="active", provision="permit", kinds=(None,), grantees=(None,),
             start=None, end=None):
    raw = con.execute("SELECT coalesce(max(raw_id), 0) + 1 FROM core.consent_event").fetchone()[0]
    for kind in kinds:
        for grantee in grantees:
            con.execute("INSERT INTO core.consent_event VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [consent_id, patient, when, status, provision, kind, grantee, start or when, end, raw])


def _access(con, access_id, patient, viewer, when, kinds=("condition",), purpose="TREAT", staff_role="doctor",
            refs=()):
    raw = con.execute("SELECT coalesce(max(raw_id), 0) + 1 FROM core.access_event").fetchone()[0]
    con.execute("""INSERT INTO core.access_event (access_id, patient_key, viewer, recorded, purpose, action, outcome,
                   kinds, raw_id, staff_id, staff_role, resource_refs) VALUES (?, ?, ?, ?, ?, 'R', '0', ?, ?, 'D001', ?, ?)""",
                [access_id, patient, viewer, when, purpose, list(kinds), raw, staff_role, list(refs)])


def _condition(con, inst, rid, patient, when, undelivered=False):
    raw = con.execute("SELECT coalesce(max(raw_id), 0) + 1000 FROM core.condition").fetchone()[0]
    con.execute("""INSERT INTO core.condition (institution_number, resource_identifier, identity_occurrence, patient_key,
                   category, flag_lts, flag_uninformed, flag_undelivered, last_updated, is_tombstoned, raw_id, file_id)
                   VALUES (?, ?, 1, ?, 'condition', false, false, ?, ?, false, ?, 1)""",
                [inst, rid, patient, undelivered, when, raw])


@pytest.fixture
def con(tmp_path):
    con = connect(tmp_path / "w.duckdb")
    for inst, ftype in ((A, "hospital"), (B, "clinic")):
        con.execute("INSERT INTO core.facility (institution_number, prefecture_code, score_table, facility_type, raw_id) "
                    "VALUES (?, ?, '1', ?, 1)", [inst, inst[:2], ftype])
    # P: consents to condition only at A from Jan; withdraws in May. Q: never consents.
    _consent(con, "c1", P, "2025-01-01 09:00:00+09", kinds=("condition",), grantees=(A,), end="2025-12-31 00:00:00+09")
    _consent(con, "c2", P, "2025-05-01 09:00:00+09", status="inactive", provision="deny")
    set_watermark(con, "core.consent_event", 100)
    derive_consent_intervals(con)
    _condition(con, A, "C1", P, "2025-01-10 10:00:00+09")  # A treats P
    _condition(con, A, "SECRET", Q, "2025-01-10 10:00:00+09", undelivered=True)
    yield con
    con.close()


def _findings(con, as_of=AS_OF) -> dict[str, dict[str, dict]]:
    compute_findings(con, AuditWindow(as_of))
    out: dict[str, dict[str, dict]] = {}
    for access_id, rule, evidence in con.execute(
            "SELECT access_id, rule_id, CAST(evidence AS VARCHAR) FROM audit_finding").fetchall():
        out.setdefault(access_id, {})[rule] = json.loads(evidence)
    return out


def test_covered_access_by_a_treating_doctor_has_no_finding(con):
    _access(con, "ok", P, A, "2025-02-01 10:00:00+09")
    assert _findings(con) == {}


def test_consent_reasons(con):
    _access(con, "before", P, A, "2024-12-31 10:00:00+09")          # before any consent
    _access(con, "other-facility", P, B, "2025-02-01 10:00:00+09")   # B is not a grantee
    _access(con, "other-kind", P, A, "2025-02-01 10:05:00+09", kinds=("allergy",))
    _access(con, "no-kind", P, A, "2025-02-01 10:10:00+09", kinds=())  # checked against every kind
    _access(con, "withdrawn", P, A, "2025-05-02 10:00:00+09")
    found = _findings(con)
    assert found["before"]["A-NO-CONSENT"]["reason"] == "no-consent"
    assert found["other-facility"]["A-NO-CONSENT"]["reason"] == "facility-not-granted"
    assert found["other-kind"]["A-NO-CONSENT"]["reason"] == "kind-not-granted"
    no_kind = found["no-kind"]["A-NO-CONSENT"]
    assert no_kind["reason"] == "kind-not-granted" and "condition" not in no_kind["uncovered_kinds"]
    assert len(no_kind["uncovered_kinds"]) == 8
    assert set(found["withdrawn"]) == {"A-AFTER-WITHDRAWAL"}
    assert found["withdrawn"]["A-AFTER-WITHDRAWAL"]["withdrawal_consent_id"] == "c2"


def test_emergency_without_consent_is_listed_not_a_breach(con):
    _access(con, "er", Q, B, "2025-03-01 03:00:00+09", purpose="ETREAT")
    found = _findings(con)
    assert set(found["er"]) == {"A-EMERGENCY"}
    assert found["er"]["A-EMERGENCY"]["consent_covered"] is False
    assert found["er"]["A-EMERGENCY"]["care_relationship"] is False


def test_roles(con):
    _access(con, "nurse", P, A, "2025-02-01 10:00:00+09", staff_role="nurse")
    _access(con, "clerk", P, A, "2025-02-01 10:01:00+09", staff_role="clerk")
    _access(con, "none", P, A, "2025-02-01 10:02:00+09", staff_role=None)
    _access(con, "janitor", P, A, "2025-02-01 10:03:00+09", staff_role="janitor")
    found = _findings(con)
    assert "nurse" not in found
    assert found["clerk"]["A-ROLE"] == {"staff_role": "clerk", "role_name_ja": "事務", "known_role": True}
    assert found["none"]["A-ROLE"]["staff_role"] is None
    assert found["janitor"]["A-ROLE"]["known_role"] is False


def test_undelivered_exposure_with_and_without_the_institution(con):
    _access(con, "named", P, A, "2025-02-01 10:00:00+09", refs=(f"{A}|C1", f"{A}|SECRET"))
    _access(con, "no-inst", P, A, "2025-02-01 10:01:00+09", refs=("|SECRET",))
    _access(con, "other-inst", P, A, "2025-02-01 10:02:00+09", refs=(f"{B}|SECRET",))
    found = _findings(con)
    assert found["named"]["A-UNDELIVERED"]["undelivered_resources"] == [f"{A}|SECRET"]
    assert "A-UNDELIVERED" in found["no-inst"] and "other-inst" not in found


def test_care_relationship_through_a_referral_and_the_as_of_cut_off(con):
    con.execute("""INSERT INTO core.document (document_key, institution_number, document_identifier, patient_key,
                   category, type_code, entry_count, last_updated, is_tombstoned, raw_id, bundle_key, file_id,
                   recipient_institution) VALUES ('x', ?, 'D1', ?, 'referral', '57133-1', 5,
                   '2025-06-15 10:00:00+09', false, 1, 1, 1, ?)""", [A, P, B])
    _consent(con, "c3", Q, "2025-01-01 09:00:00+09")
    set_watermark(con, "core.consent_interval", 0)  # re-derive every patient
    derive_consent_intervals(con)
    _access(con, "referred", P, B, "2025-06-01 10:00:00+09")  # viewed before the referral arrived
    _access(con, "stranger", Q, B, "2025-06-01 10:00:00+09")
    assert "A-NO-CARE" in _findings(con, date(2025, 6, 10))["referred"]  # as of before the referral
    found = _findings(con, date(2025, 6, 20))
    assert "A-NO-CARE" not in found.get("referred", {})
    assert set(found["stranger"]) == {"A-NO-CARE"}


def test_window_defaults_and_errors(con):
    _access(con, "late", P, A, "2025-07-04 23:30:00+09")  # 2025-07-04 in Japan, 14:30 UTC
    assert resolve_window(con).as_of == date(2025, 7, 4)
    with pytest.raises(AuditWindowError):
        AuditWindow(date(2025, 1, 1), date_to=date(2025, 2, 1))
    with pytest.raises(AuditWindowError):
        AuditWindow(date(2025, 3, 1), date_from=date(2025, 2, 2), date_to=date(2025, 2, 1))
    compute_findings(con, AuditWindow(date(2025, 7, 4), date_from=date(2025, 7, 4)))
    assert con.execute("SELECT count(*) FROM audit_access").fetchone()[0] == 1
