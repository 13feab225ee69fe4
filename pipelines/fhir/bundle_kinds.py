"""The bundle profiles Karte accepts, and what each one promises about its envelope (domain_spec §1.3, §1.6, §3.2)."""

from dataclasses import dataclass

from pipelines.fhir import systems


@dataclass(frozen=True)
class BundleKind:
    profile: str
    bundle_type: str  # Bundle.type
    first_entry: str  # resourceType of entry[0] (R0211)
    doc_types: tuple[str, ...]  # accepted Composition.type codes; () for the collection bundle
    category: str | None  # urn:karte:information-kind of a document; None for the 5情報 collection
    bundle_identifier_rule: bool  # R2152 applies (CLINS bundle-identifier 医療機関番号^西暦^ID)
    member_id_from: str  # "patient": JP_Insurance_memberID on the Patient; "coverage": eCheckup Coverage + insurer


BUNDLE_KINDS = {
    k.profile: k for k in (
        BundleKind(systems.BUNDLE_CLINS, "collection", "Patient", (), None, True, "patient"),
        BundleKind(systems.BUNDLE_EREFERRAL, "document", "Composition", ("57133-1",), "referral", True, "patient"),
        BundleKind(systems.BUNDLE_EDISCHARGE, "document", "Composition", ("18842-5",), "discharge-summary", True,
                   "patient"),
        # 患者サマリー is not one of the 3文書6情報: stored, but no consent kind covers it
        BundleKind(systems.BUNDLE_EPCS, "document", "Composition", ("56447-6",), "patient-summary", True, "patient"),
        # 健診結果報告書: 53576-5 (eCheckup package) and JPGCHKUP01 (CLINS package) both occur
        BundleKind(systems.BUNDLE_ECHECKUP_CLINS, "document", "Composition", ("53576-5", "JPGCHKUP01"), "checkup",
                   True, "patient"),
        # the generic eCheckup profile: documentInstance identifiers, the insured person known by Coverage
        BundleKind(systems.BUNDLE_ECHECKUP, "document", "Composition", ("53576-5", "JPGCHKUP01"), "checkup",
                   False, "coverage"),
    )
}
