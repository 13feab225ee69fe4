"""The generator's self-check: clean output must be structurally valid FHIR (fhir.resources R4B models).

Every clean bundle is validated until `budget` resources have been checked, then every `every`-th one — a
deterministic sample, so a small sample is validated completely and a large one stays fast.
"""

from fhir.resources.R4B import get_fhir_model_class


class SelfCheckError(AssertionError):
    """Generated output that fhir.resources rejects: a generator bug, never expected."""


class SelfCheck:
    def __init__(self, enabled: bool = True, budget: int = 3000, every: int = 25):
        self.enabled = enabled
        self.budget = budget
        self.every = every
        self.resources_checked = 0
        self.bundles_checked = 0
        self.bundles_seen = 0
        self.others_seen = 0
        self.others_checked = 0

    def bundle(self, bundle: dict) -> None:
        if not self.enabled:
            return
        self.bundles_seen += 1
        if self.resources_checked >= self.budget and self.bundles_seen % self.every:
            return
        self._validate("Bundle", bundle, bundle.get("identifier", {}).get("value"))
        self.bundles_checked += 1
        self.resources_checked += len(bundle.get("entry", []))

    def resource(self, resource: dict) -> None:
        """Consent / AuditEvent lines: the first 200, then every 50th."""
        if not self.enabled:
            return
        self.others_seen += 1
        if self.others_seen > 200 and self.others_seen % 50:
            return
        self._validate(resource["resourceType"], resource, resource.get("id"))
        self.others_checked += 1

    @staticmethod
    def _validate(rtype: str, obj: dict, label: str | None) -> None:
        try:
            get_fhir_model_class(rtype).model_validate(obj)
        except Exception as exc:  # pydantic.ValidationError and friends
            raise SelfCheckError(f"generated {rtype} {label!r} is not valid FHIR R4B: {exc}") from exc
