"""The catalogue of audit rules: every row of reports.audit_finding names one of these ids, and the
thresholds that define the statistical ones. docs/audit.md explains each rule for reviewers.

Emergency access (purpose ETREAT) is allowed without consent: it is always listed (A-EMERGENCY) and is
exempt from the consent rules (A-NO-CONSENT, A-AFTER-WITHDRAWAL) and from A-NO-CARE, whose state it
carries as evidence instead. Every other rule applies to every access.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class AuditRule:
    rule_id: str
    title_ja: str
    title_en: str
    meaning: str  # what the finding says, for the reviewer
    review: str  # what the security officer should do


_RULES = [
    AuditRule("A-NO-CONSENT", "同意なし閲覧", "access without covering consent",
              "no consent of the patient covered this facility, kind of information and instant "
              "(none recorded yet, period not started or ended, facility or kind not granted)",
              "ask the facility for the reason; confirm the patient's consent at reception"),
    AuditRule("A-AFTER-WITHDRAWAL", "同意撤回後の閲覧", "access after consent withdrawal",
              "the consent in force at the instant of access was the patient's withdrawal",
              "treat as a probable breach: the patient had revoked sharing"),
    AuditRule("A-EMERGENCY", "緊急時閲覧", "emergency access (ETREAT)",
              "emergency access needs no consent but is always reviewed; weight 2 when the facility's "
              "emergency share is far above its peers' (robust z-score)",
              "confirm the emergency in the facility's record; at weight 2 review the facility's practice"),
    AuditRule("A-ROLE", "閲覧権限のない職種", "staff role not allowed to view clinical data",
              "the staff member's role (urn:karte:staff-role) is not allowed to view clinical data "
              "(data/reference/staff_roles.csv), or no role was recorded",
              "ask the facility who used the account; check role assignment in its terminal"),
    AuditRule("A-UNDELIVERED", "未提供病名の露出", "exposure of UNDELIVERED data",
              "the access names a Condition flagged UNDELIVERED (未提供), which must never be shared",
              "report to the service operator: the sharing service delivered withheld data"),
    AuditRule("A-VOLUME", "大量閲覧", "unusual number of patients viewed in a day",
              "the staff member (or the facility) viewed far more distinct patients that day than its peers "
              "(robust z-score and an absolute minimum)",
              "ask the facility to justify the day's views (e.g. a ward round) or investigate browsing"),
    AuditRule("A-NO-CARE", "診療関係なし", "access without a care relationship",
              "the warehouse holds no record the facility sent for this patient and no referral addressed to it, "
              "up to the as-of date",
              "ask the facility for the visit behind the access"),
]

RULES: dict[str, AuditRule] = {r.rule_id: r for r in _RULES}

# --- thresholds (the rule definitions; pipelines/generate/audit_truth.py uses the same values) -----------

#: modified z-score threshold (Iglewicz & Hoaglin): z = (x - median) / (1.4826 * MAD)
ROBUST_Z = 3.5
#: 1.4826 * MAD estimates the standard deviation for normal data
MAD_TO_SD = 1.4826

#: A-EMERGENCY weighting: facilities with at least this many accesses in the window are peers
EMERGENCY_MIN_ACCESSES = 20
#: … at least this many peers are needed to call a share abnormal
EMERGENCY_MIN_PEERS = 3
#: … a facility needs at least this many emergency accesses before its share can be called abnormal
EMERGENCY_MIN_COUNT = 5
#: … scale floor (2 percentage points): when most facilities have no emergency access, MAD is 0
EMERGENCY_SCALE_FLOOR = 0.02

#: A-VOLUME: a staff-day or facility-day needs at least this many distinct patients (quiet days never trigger)
VOLUME_MIN_PATIENTS = 30
#: … scale floor (1 patient): most staff-days have the same small count, so MAD is often 0
VOLUME_SCALE_FLOOR = 1.0

#: weight of an A-EMERGENCY finding at a facility with an abnormal emergency share (otherwise 1)
ELEVATED_WEIGHT = 2
