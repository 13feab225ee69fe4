"""A-ROLE, A-UNDELIVERED and A-NO-CARE: rules about who viewed and what they saw, one access at a time.

Care relationship (A-NO-CARE) = what the warehouse can see of one: any record the viewing facility sent for
the patient that the warehouse accepted (a row of core.condition, allergy, lab_result, medication_request or
document from that institution, tombstones excluded), or a referral (診療情報提供書) addressed to it
(core.document.recipient_institution), sent at any time up to the end of the as-of day — a facility usually
views the record at reception, before it sends anything, so later records up to as_of count. Emergency access
is exempt (an emergency patient is often a stranger); A-EMERGENCY carries the care state instead.
"""

import duckdb

from pipelines.audit.window import AuditWindow

_SENT = ("condition", "allergy", "lab_result", "medication_request", "document")


def build_care(con: duckdb.DuckDBPyConnection, window: AuditWindow) -> None:
    """TEMP TABLE audit_care(viewer, patient_key, since): facilities with a care relationship to a patient."""
    sent = " UNION ALL ".join(
        f"SELECT institution_number AS viewer, patient_key, last_updated FROM core.{t} WHERE NOT is_tombstoned"
        for t in _SENT)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE audit_care AS
        SELECT viewer, patient_key, min(coalesce(last_updated, '-infinity'::TIMESTAMPTZ)) AS since
        FROM ({sent}
              UNION ALL SELECT recipient_institution, patient_key, last_updated FROM core.document
              WHERE recipient_institution IS NOT NULL AND NOT is_tombstoned)
        WHERE last_updated IS NULL OR last_updated < {window.as_of_end_sql}
        GROUP BY viewer, patient_key""")


def role_sql() -> str:
    return """
        SELECT a.raw_id, 'A-ROLE' AS rule_id, 1 AS weight,
               CASE WHEN a.staff_role IS NULL THEN 'No staff role was recorded for the viewer.'
                    WHEN r.role IS NULL THEN format('Staff role "{}" is not a known urn:karte:staff-role code.',
                                                    a.staff_role)
                    ELSE format('Staff role {} ({}) may not view clinical data.', r.name_ja, r.name_en) END
                   AS explanation,
               json_object('staff_role', a.staff_role, 'role_name_ja', r.name_ja, 'known_role', r.role IS NOT NULL)
                   AS evidence
        FROM audit_access a LEFT JOIN audit_staff_role r ON r.role = a.staff_role
        WHERE r.role IS NULL OR NOT r.may_view_clinical"""


def undelivered_sql() -> str:
    # A ref is '<医療機関番号>|<identifier>'; an empty institution matches the identifier from any institution.
    return """
        SELECT raw_id, 'A-UNDELIVERED' AS rule_id, 1 AS weight,
               format('The access names {} Condition(s) flagged UNDELIVERED (未提供), which are never shared: {}.',
                      len(refs), array_to_string(refs, ', ')) AS explanation,
               json_object('undelivered_resources', refs) AS evidence
        FROM (
            SELECT r.raw_id, list(DISTINCT r.ref ORDER BY r.ref) AS refs
            FROM (SELECT raw_id, unnest(resource_refs) AS ref FROM audit_access WHERE len(resource_refs) > 0) r
            JOIN core.condition c
              ON c.flag_undelivered
             AND c.resource_identifier = substr(r.ref, strpos(r.ref, '|') + 1)
             AND (split_part(r.ref, '|', 1) = '' OR c.institution_number = split_part(r.ref, '|', 1))
            GROUP BY r.raw_id)"""


def no_care_sql() -> str:
    return """
        SELECT a.raw_id, 'A-NO-CARE' AS rule_id, 1 AS weight,
               'The facility has sent no record for this patient and received no referral for them '
               || '(up to the as-of date).' AS explanation,
               json_object('records_from_facility', 0, 'referrals_to_facility', 0) AS evidence
        FROM audit_access a ANTI JOIN audit_care c ON c.viewer = a.viewer AND c.patient_key = a.patient_key
        WHERE NOT a.emergency"""
