"""The audit findings the warehouse must report for a generated sample, computed from the generator's own plan.

This is a second, independent implementation of the audit rules (pipelines/audit/rules.py defines them; the
warehouse evaluates them in DuckDB SQL over what it ingested). It works on the plan — who viewed whom when, the
consent histories, what each facility's bundles left in the warehouse (holdings.py) — in plain Python, so a test
comparing the two catches a mistake in either. Only the rule parameters (thresholds) are shared.

Scope: every access of the sample, as of the sample's last day (peers = the whole sample).
"""

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable
from statistics import median

from pipelines.audit import rules as R
from pipelines.generate.access import Access, uncovered_reason
from pipelines.generate.common import JST
from pipelines.generate.consent import ConsentEvent
from pipelines.generate.holdings import Holdings
from pipelines.generate.staff import ROLES


def _outliers(values: dict[Hashable, float], minimum: float, floor: float) -> dict[Hashable, float]:
    """{key: robust z} of the values at or above `minimum` whose modified z-score reaches R.ROBUST_Z."""
    if not values:
        return {}
    mid = median(values.values())
    scale = max(R.MAD_TO_SD * median(abs(v - mid) for v in values.values()), floor)
    return {k: (v - mid) / scale for k, v in values.items() if v >= minimum and (v - mid) / scale >= R.ROBUST_Z}


def elevated_emergency_facilities(accesses: list[Access]) -> dict[str, float]:
    """Facilities whose share of emergency access is far above their peers' (A-EMERGENCY weight 2)."""
    total, etreat = Counter(a.viewer for a in accesses), Counter(a.viewer for a in accesses if a.purpose == "ETREAT")
    peers = {f: etreat[f] / n for f, n in total.items() if n >= R.EMERGENCY_MIN_ACCESSES}
    if len(peers) < R.EMERGENCY_MIN_PEERS:
        return {}
    far = _outliers(peers, 0.0, R.EMERGENCY_SCALE_FLOOR)
    return {f: z for f, z in far.items() if etreat[f] >= R.EMERGENCY_MIN_COUNT}


def busy_days(accesses: list[Access], facility_type: Callable[[str], str]) -> tuple[set, set]:
    """(anomalous (facility, staff, day), anomalous (facility, day)): far more distinct patients than peers.
    Staff-days are compared with every staff-day; facility-days with those of the same facility type."""
    staff_day: dict[tuple, set[int]] = defaultdict(set)
    facility_day: dict[tuple, set[int]] = defaultdict(set)
    for a in accesses:
        day = a.recorded.astimezone(JST).date()
        staff_day[(a.viewer, a.staff.staff_id, day)].add(a.patient)
        facility_day[(a.viewer, day)].add(a.patient)
    staff = _outliers({k: len(v) for k, v in staff_day.items()}, R.VOLUME_MIN_PATIENTS, R.VOLUME_SCALE_FLOOR)
    by_type: dict[str, dict] = defaultdict(dict)
    for k, v in facility_day.items():
        by_type[facility_type(k[0])][k] = len(v)
    facility: set = set()
    for group in by_type.values():
        facility |= set(_outliers(group, R.VOLUME_MIN_PATIENTS, R.VOLUME_SCALE_FLOOR))
    return set(staff), facility


def audit_truth(accesses: list[Access], consents: list[list[ConsentEvent]], holdings: Holdings,
                facility_type: Callable[[str], str]) -> dict[str, dict[str, dict]]:
    """{access id: {rule id: evidence}} for every access with at least one finding."""
    undelivered = {(c.inst, c.resource_id) for _, c in holdings.undelivered}
    elevated = elevated_emergency_facilities(accesses)
    busy_staff, busy_facility = busy_days(accesses, facility_type)
    out: dict[str, dict[str, dict]] = {}
    for a in accesses:
        found: dict[str, dict] = {}
        reason = uncovered_reason(consents[a.patient], a.viewer, a.kind, a.recorded)
        care = holdings.has_care(a.viewer, a.patient)
        if a.purpose == "ETREAT":  # allowed without consent: reviewed, never a consent finding
            found["A-EMERGENCY"] = {"weight": R.ELEVATED_WEIGHT if a.viewer in elevated else 1,
                                    "covered": reason is None, "care": care}
        else:
            if reason == "withdrawn":
                found["A-AFTER-WITHDRAWAL"] = {}
            elif reason is not None:
                found["A-NO-CONSENT"] = {"reason": reason}
            if not care:
                found["A-NO-CARE"] = {}
        if not ROLES[a.staff.role][1]:
            found["A-ROLE"] = {"role": a.staff.role}
        exposed = sorted(r for r in a.resources if r in undelivered)
        if exposed:
            found["A-UNDELIVERED"] = {"resources": [f"{i}|{r}" for i, r in exposed]}
        day = a.recorded.astimezone(JST).date()
        staff_busy = (a.viewer, a.staff.staff_id, day) in busy_staff
        facility_busy = (a.viewer, day) in busy_facility
        if staff_busy or facility_busy:
            found["A-VOLUME"] = {"staff_day": staff_busy, "facility_day": facility_busy}
        if found:
            out[a.id] = found
    return out
