"""Staff who view records at a facility: facility-local practitioner ids and their role (urn:karte:staff-role).

The generator keeps its own table of which roles may view clinical data (its audit truth must not borrow the
warehouse's); tests check it agrees with the shipped data/reference/staff_roles.csv.
"""

import random
from dataclasses import dataclass

from pipelines.generate.common import rng_for
from pipelines.generate.facilities import Facility

#: role code -> (name_ja, may view clinical data)
ROLES = {
    "doctor": ("医師", True), "dentist": ("歯科医師", True), "pharmacist": ("薬剤師", True), "nurse": ("看護師", True),
    "midwife": ("助産師", True), "public-health-nurse": ("保健師", True),
    "clinical-laboratory-technologist": ("臨床検査技師", True),
    "clerk": ("事務", False), "medical-clerk": ("医師事務作業補助者", False), "system-admin": ("システム管理者", False),
}
#: id prefix of each role's facility-local staff ids (doctors keep the D-ids they sign documents with)
PREFIX = {"doctor": "D", "dentist": "D", "nurse": "N", "pharmacist": "Y", "clerk": "K"}


@dataclass(frozen=True, slots=True)
class Staff:
    staff_id: str  # facility-local practitioner id (identifier system urn:oid:1.2.392.100495.20.3.41.1 + 医療機関番号)
    role: str


@dataclass(frozen=True, slots=True)
class Roster:
    viewers: tuple[Staff, ...]  # who views records in the normal course of care
    weights: tuple[float, ...]
    clerks: tuple[Staff, ...]  # never view in the normal course (the audit's A-ROLE cases use them)

    def pick(self, rng: random.Random) -> Staff:
        return rng.choices(self.viewers, weights=self.weights, k=1)[0]


def make_roster(seed: int, fac: Facility) -> Roster:
    rng = rng_for(seed, "staff", fac.inst)
    clinician = "dentist" if fac.ftype == "dental" else "doctor"
    staff = [Staff(d.local_id, clinician) for d in fac.doctors]
    weights = [0.75 / len(staff)] * len(staff)
    n_nurse = {"hospital": rng.randint(3, 8), "clinic": rng.randint(1, 2), "dental": 0}[fac.ftype]
    n_pharm = rng.randint(1, 3) if fac.ftype == "hospital" else 0
    nurses = [Staff(f"N{i:03d}", "nurse") for i in range(1, n_nurse + 1)]
    pharmacists = [Staff(f"Y{i:03d}", "pharmacist") for i in range(1, n_pharm + 1)]
    other = 0.25 if nurses or pharmacists else 0.0
    if not other:
        weights = [1.0 / len(staff)] * len(staff)
    for group, share in ((nurses, 0.18 if pharmacists else other), (pharmacists, 0.07)):
        for s in group:
            staff.append(s)
            weights.append(share / len(group))
    clerks = tuple(Staff(f"K{i:03d}", "clerk") for i in range(1, rng.randint(1, 3) + 1))
    return Roster(tuple(staff), tuple(weights), clerks)
