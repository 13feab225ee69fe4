"""What the warehouse will hold once the sample is ingested, as far as the audit truth needs it: which facility
has a care relationship with which patient, and the Conditions a view may name.

The FHIR writer reports every bundle with its fate (written clean, lost to a fault, or accepted minus some
resources); only what survives ingest counts, so the truth agrees with the warehouse even at fault_rate > 0.
"""

from collections import defaultdict
from datetime import datetime

from pipelines.fhir import systems as S
from pipelines.generate.access import SharedCondition
from pipelines.generate.faults import clinical_entries, resource_id

CONDITIONS_KEPT = 12  # per patient: the latest ones are what a view names (bounds memory on large samples)


def _is_tombstone(res: dict) -> bool:
    """entered-in-error (a re-send that withdraws the resource): the warehouse keeps it as a tombstone only."""
    if res.get("status") == "entered-in-error":
        return True
    codes = res.get("verificationStatus", {}).get("coding", [])
    return any(c.get("code") == "entered-in-error" for c in codes)


def _is_undelivered(res: dict) -> bool:
    return any(t.get("system") == S.INDICATION_CS and t.get("code") == "UNDELIVERED"
               for t in res.get("meta", {}).get("tag", []))


class Holdings:
    def __init__(self) -> None:
        #: (医療機関番号, patient index) -> earliest time a record of theirs for that patient was sent
        self.care: dict[tuple[str, int], datetime] = {}
        #: (recipient 医療機関番号, patient index) -> earliest referral addressed to it
        self.referred: dict[tuple[str, int], datetime] = {}
        self.conditions: dict[int, list[SharedCondition]] = defaultdict(list)
        self.undelivered: list[tuple[int, SharedCondition]] = []

    def has_care(self, inst: str, patient: int) -> bool:
        return (inst, patient) in self.care or (inst, patient) in self.referred

    def record(self, bundle: dict, patient: int, sender: str, recipient: str | None, *, lost: bool,
               clean: bool, excluded: set[str] = frozenset()) -> None:
        """`lost`: the whole bundle is quarantined; `clean`: no fault touched it; `excluded`: resourceInstance
        identifiers quarantined or tombstoned."""
        if lost:
            return
        sent = datetime.fromisoformat(bundle["timestamp"])
        kept = [r for r in clinical_entries(bundle) if resource_id(r) not in excluded and not _is_tombstone(r)]
        if bundle["type"] == "document" or kept:  # a document's Composition is a record of its own
            key = (sender, patient)
            self.care[key] = min(self.care.get(key, sent), sent)
        if recipient is not None:
            key = (recipient, patient)
            self.referred[key] = min(self.referred.get(key, sent), sent)
        if not clean:
            return
        for res in kept:
            if res["resourceType"] != "Condition":
                continue
            c = SharedCondition(sent, sender, resource_id(res), _is_undelivered(res))
            if c.undelivered:
                self.undelivered.append((patient, c))
            elif all(s.resource_id != c.resource_id for s in self.conditions[patient]):  # an update re-sends it
                shown = self.conditions[patient]
                shown.append(c)
                if len(shown) > CONDITIONS_KEPT:
                    shown.sort(key=lambda x: x.available_at)
                    del shown[0]

    def finish(self) -> None:
        for shown in self.conditions.values():
            shown.sort(key=lambda x: (x.available_at, x.resource_id))
