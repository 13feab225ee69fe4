"""Planted audit cases: the access histories every sample must contain so each audit rule has something to find.

Natural accesses (access.py) rarely break a rule, and a small sample may break none; these cases make sure every
rule fires, in a default-sized sample and in the small test samples alike:

  withdrawal         a patient withdraws consent; a facility that treats them views their record afterwards
  no-consent         a view of a patient whose consent does not cover it (never consented, where possible)
  emergency-no-consent  the same without consent, but as emergency access (ETREAT): allowed, only reviewed
  clerk              a few views by reception clerks (a role not allowed to view clinical data)
  undelivered        a view naming a Condition flagged UNDELIVERED (the service must never show one)
  emergency-share    one facility marks a large share of its views as emergency access
  volume             one staff member views many distinct patients in one day
  no-care            views by a facility that has never sent anything for the patient (consent covers them)

A case that a sample cannot host (too few patients or facilities) is listed as unavailable in the manifest.
Everything is drawn from one seeded stream, after the natural plan, so the rest of the sample is unchanged.
"""

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from pipelines.audit.rules import EMERGENCY_MIN_ACCESSES, EMERGENCY_MIN_COUNT, VOLUME_MIN_PATIENTS
from pipelines.generate.access import Access
from pipelines.generate.common import at, new_uuid
from pipelines.generate.consent import ConsentEvent, covers, in_force
from pipelines.generate.facilities import Facility
from pipelines.generate.holdings import Holdings
from pipelines.generate.schedule import Visit
from pipelines.generate.staff import Roster

CLERK_ACCESSES = 3
EMERGENCY_TARGET_SHARE = 0.4
VOLUME_PATIENTS = VOLUME_MIN_PATIENTS + 12
NO_CARE_ACCESSES = 2


@dataclass
class AuditCases:
    rng: random.Random
    facilities: dict[str, Facility]
    visits: list[list[Visit]]  # per patient index
    consents: list[list[ConsentEvent]]  # per patient index (planting may add a withdrawal)
    holdings: Holdings
    rosters: dict[str, Roster]
    start: date
    end: datetime
    planted: dict[str, list[str]] = field(default_factory=dict)  # case -> access ids
    unavailable: list[str] = field(default_factory=list)
    _withdrawn: tuple[int, str, datetime] | None = None  # (patient, facility, withdrawal time)
    _volume_inst: str | None = None

    # --- helpers -----------------------------------------------------------------------------------------
    def _first_day(self, inst: str) -> date:
        return self.facilities[inst].first_active_day(self.start)

    def _access(self, case: str, when: datetime, patient: int, inst: str, kind: str, purpose: str = "TREAT",
                staff=None, resources: tuple = ()) -> Access:
        a = Access(new_uuid(self.rng), when, patient, inst, staff or self.rosters[inst].pick(self.rng), kind,
                   purpose, resources, case)
        self.planted.setdefault(case, []).append(a.id)
        return a

    def _treated(self) -> list[tuple[int, Visit]]:
        """(patient, visit) for visits at a facility that holds a record of that patient (a care relationship)."""
        return [(p, v) for p, vs in enumerate(self.visits) for v in vs if self.holdings.has_care(v.inst, p)]

    # --- before the natural accesses ---------------------------------------------------------------------
    def plant_withdrawal(self) -> None:
        """A patient with an active consent and a treating facility withdraws: later views break consent."""
        options = []
        for p, v in self._treated():
            evs = self.consents[p]
            if not evs:
                continue
            last = max(e.when for e in evs)
            ev = in_force(evs, last)
            room = self.end - max(last, v.when)
            if ev.status == "active" and room > timedelta(days=20):
                options.append((p, v, last))
        if not options:
            self.unavailable.append("withdrawal")
            return
        p, v, last = self.rng.choice(options)
        when = max(last, v.when) + timedelta(days=self.rng.randint(2, 8), minutes=self.rng.randint(0, 600))
        self.consents[p].append(ConsentEvent(new_uuid(self.rng), when, "inactive", "deny", when, None, None, None))
        self._withdrawn = (p, v.inst, when)

    # --- after the natural accesses ----------------------------------------------------------------------
    def plant_accesses(self, accesses: list[Access]) -> list[Access]:
        """Edits `accesses` in place (clerks, emergency share) and returns the new accesses to add."""
        new: list[Access] = []
        if self._withdrawn:
            p, inst, when = self._withdrawn
            new.append(self._access("withdrawal", when + timedelta(days=self.rng.randint(1, 9)), p, inst, "condition"))
        new += self._no_consent()
        new += self._undelivered()
        new += self._volume()
        new += self._no_care()
        self._clerks(accesses)
        self._emergency_share(accesses + new)
        return new

    def _no_consent(self) -> list[Access]:
        treated = self._treated()
        never = [(p, v) for p, v in treated if not self.consents[p]]
        if never:
            p, v = self.rng.choice(never)
            when = v.when + timedelta(minutes=5)
            return [self._access("no-consent", when, p, v.inst, "lab-result"),
                    self._access("emergency-no-consent", when + timedelta(minutes=3), p, v.inst, "condition",
                                 purpose="ETREAT")]
        # everyone consented: a kind outside the consented scope at a treating facility
        for p, v in treated:
            ev = in_force(self.consents[p], v.when)
            kind = None
            if ev is not None and ev.kinds is not None and ev.status == "active":
                kind = next((k for k in ("checkup", "referral", "discharge-summary", "infection")
                             if k not in ev.kinds), None)
            if kind is not None:
                return [self._access("no-consent", v.when + timedelta(minutes=5), p, v.inst, kind),
                        self._access("emergency-no-consent", v.when + timedelta(minutes=8), p, v.inst, kind,
                                     purpose="ETREAT")]
        self.unavailable += ["no-consent", "emergency-no-consent"]
        return []

    def _undelivered(self) -> list[Access]:
        for p, cond in sorted(self.holdings.undelivered, key=lambda x: (x[1].available_at, x[1].resource_id)):
            for v in self.visits[p]:
                if v.when > cond.available_at and v.inst != cond.inst and self.holdings.has_care(v.inst, p):
                    return [self._access("undelivered", v.when + timedelta(minutes=4), p, v.inst, "condition",
                                         resources=((cond.inst, cond.resource_id),))]
        if self.holdings.undelivered:  # no other facility treats them: the sender views its own record
            p, cond = self.holdings.undelivered[0]
            when = cond.available_at + timedelta(hours=2)
            if when <= self.end:
                return [self._access("undelivered", when, p, cond.inst, "condition",
                                     resources=((cond.inst, cond.resource_id),))]
        self.unavailable.append("undelivered")
        return []

    def _volume(self) -> list[Access]:
        hospitals = sorted((f for f in self.facilities.values() if f.connected and f.ftype != "dental"),
                           key=lambda f: (f.ftype != "hospital", f.inst))
        day = (self.end - timedelta(days=10)).date()
        fac = next((f for f in hospitals if self._first_day(f.inst) <= day), None)
        if fac is None:
            self.unavailable.append("volume")
            return []
        staff = next(s for s in self.rosters[fac.inst].viewers if s.role == "doctor")
        first = at(day, 9)
        # consented patients first: a realistic snooping spree stays inside what consent shares
        covered = [p for p in range(len(self.visits)) if covers(self.consents[p], fac.inst, "condition", first)]
        others = sorted(set(range(len(self.visits))) - set(covered))
        if len(covered) + len(others) < VOLUME_MIN_PATIENTS:
            self.unavailable.append("volume")
            return []
        if len(covered) >= VOLUME_PATIENTS:
            chosen = self.rng.sample(covered, k=VOLUME_PATIENTS)
        else:
            chosen = covered + self.rng.sample(others, k=min(len(others), VOLUME_PATIENTS - len(covered)))
        self._volume_inst = fac.inst
        return [self._access("volume", first + timedelta(minutes=6 * i, seconds=self.rng.randint(0, 59)), p, fac.inst,
                             "condition", staff=staff) for i, p in enumerate(chosen)]

    def _no_care(self) -> list[Access]:
        connected = sorted(i for i, f in self.facilities.items() if f.connected)
        for p in self.rng.sample(range(len(self.visits)), k=len(self.visits)):
            evs = self.consents[p]
            if not evs or evs[0].actors is not None:
                continue
            for inst in connected:
                if self.holdings.has_care(inst, p) or inst in {v.inst for v in self.visits[p]}:
                    continue
                when = at(max(self._first_day(inst), evs[0].when.date()) + timedelta(days=3), 14, 10)
                if when + timedelta(hours=1) > self.end or not covers(evs, inst, "allergy", when):
                    continue
                return [self._access("no-care", when + timedelta(minutes=11 * i), p, inst, "allergy")
                        for i in range(NO_CARE_ACCESSES)]
        self.unavailable.append("no-care")
        return []

    def _clerks(self, accesses: list[Access]) -> None:
        natural = [a for a in accesses if a.case is None]
        if not natural:
            self.unavailable.append("clerk")
            return
        for a in self.rng.sample(natural, k=min(CLERK_ACCESSES, len(natural))):
            a.staff = self.rosters[a.viewer].clerks[0]
            a.case = "clerk"
            self.planted.setdefault("clerk", []).append(a.id)

    def _emergency_share(self, accesses: list[Access]) -> None:
        """The busiest facility (besides the volume case) turns a large share of its views into emergencies."""
        by_fac: dict[str, list[Access]] = {}
        for a in accesses:
            if a.case is None and a.viewer != self._volume_inst:
                by_fac.setdefault(a.viewer, []).append(a)
        busiest = sorted(by_fac.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        if not busiest or len(busiest[0][1]) < EMERGENCY_MIN_ACCESSES:
            self.unavailable.append("emergency-share")
            return
        inst, mine = busiest[0]
        total = sum(1 for a in accesses if a.viewer == inst)
        need = max(EMERGENCY_MIN_COUNT, round(EMERGENCY_TARGET_SHARE * total)) - sum(
            a.purpose == "ETREAT" for a in accesses if a.viewer == inst)
        treat = [a for a in mine if a.purpose == "TREAT"]
        for a in self.rng.sample(treat, k=min(max(need, 0), len(treat))):
            a.purpose = "ETREAT"
            a.case = "emergency-share"
            self.planted.setdefault("emergency-share", []).append(a.id)
