"""The catalogue of validation rules: every quarantine row names one of these ids.

Ids of the form `R....` are the JP-CLINS implementation guide's own invariant ids (domain_spec §1.3–1.7);
`K-...` ids are Karte's, for checks the IG states as cardinalities/slices without an id, or for failures
before the IG applies (bytes, JSON, envelope). The scope says what a failure quarantines.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    rule_id: str
    scope: str  # file | line | bundle | resource
    title: str
    action: str  # what the sender should do


_RULES = [
    # --- file / line level: the bytes cannot be read as FHIR JSON --------------------------------------
    Rule("K-FILE-TYPE", "file", "unsupported file type", "send .json, .ndjson or their .gz"),
    Rule("K-FILE-READ", "file", "file cannot be read", "re-send the file"),
    Rule("K-GZIP", "file", "corrupt gzip stream", "re-compress and re-send the file"),
    Rule("K-ENCODING", "line", "not valid UTF-8", "encode FHIR JSON as UTF-8 (the FHIR JSON format requires it)"),
    Rule("K-JSON", "line", "malformed or truncated JSON", "re-send the complete bundle"),
    Rule("K-NOT-BUNDLE", "line", "top-level resource is not a Bundle", "wrap resources in a JP-CLINS Bundle"),
    # size limits (pipelines/ingest/reader.py states each threshold and why): the unit is skipped unread
    Rule("K-FILE-SIZE", "file", "file larger than its size limit (one .json document 64 MiB, registry CSV 64 MiB)",
         "send one bundle per .json or many as NDJSON lines; split a registry CSV"),
    Rule("K-LINE-SIZE", "line", "line longer than its size limit (NDJSON line 64 MiB, CSV field 128 KiB)",
         "one bundle per line; send large attachments as separate documents"),
    Rule("K-BUNDLE-ENTRIES", "line", "bundle has more entries than the limit (100,000)",
         "split the resources over several bundles"),
    # --- bundle envelope --------------------------------------------------------------------------------
    Rule("K-PROFILE", "bundle", "bundle profile missing or not accepted",
         "set Bundle.meta.profile to JP_Bundle_CLINS / _eReferral / _eDischargeSummary / _ePCS"),
    Rule("K-BUNDLE-TYPE", "bundle", "Bundle.type does not match the profile",
         "collection for JP_Bundle_CLINS, document for document bundles"),
    Rule("K-EMPTY-BUNDLE", "bundle", "bundle has no entries", "send at least the Patient and one resource"),
    Rule("R2152", "bundle", "Bundle.identifier missing or not 医療機関番号^西暦^ID",
         "identifier.system bundle-identifier, value like 1318814790^2024^0123-ABC"),
    Rule("R02142", "bundle", "Bundle.meta.tag BundleResourceType missing or invalid",
         "tag the bundle with exactly one of AllergyIntolerance / Condition / Observation"),
    Rule("R02143", "bundle", "bundle holds resources of another type than its tag",
         "send one resource type per JP_Bundle_CLINS"),
    Rule("R0211", "bundle", "first entry is not the expected resource",
         "put the Patient first (collection) or the Composition first (document)"),
    Rule("K-DOC-TYPE", "bundle", "Composition.type does not match the document profile",
         "57133-1 診療情報提供書, 18842-5 退院時サマリー, 56447-6 患者サマリー"),
    Rule("K-DOC-SUBJECT", "bundle", "document has no Patient entry", "include the Patient in the document"),
    Rule("R0212", "bundle", "Patient does not claim JP_Patient_eCS", "set Patient.meta.profile"),
    Rule("R1012", "bundle", "Patient lacks exactly one 被保険者個人識別子", "add one JP_Insurance_memberID identifier"),
    Rule("R1013", "bundle", "被保険者個人識別子 does not match 保険者番号8桁:記号:番号:枝番",
         "format the identifier like 00012345:あいう:１８７:05"),
    Rule("K-CHECKUP-SUBJECT", "bundle", "eCheckup document does not identify the insured person",
         "send the Coverage (記号・番号・枝番 extensions) and the insurer Organization (保険者番号)"),
    Rule("R1113", "bundle", "Patient name contains a full-width space (U+3000)",
         "separate family and given names with a half-width space"),
    # --- resource level -----------------------------------------------------------------------------------
    Rule("K-ENTRY-PROFILE", "resource", "resource does not claim its JP-CLINS eCS profile",
         "set meta.profile to the matching JP_*_eCS profile"),
    Rule("K-RESOURCE-ID", "resource", "no resourceInstance-identifier",
         "add identifier system resourceInstance-identifier"),
    Rule("K-SUBJECT", "resource", "subject does not point to the bundle's Patient",
         "reference the Patient by fullUrl or by its JP_Insurance_memberID"),
    Rule("R9011", "resource", "InstitutionNumber extension missing", "add JP_eCS_InstitutionNumber"),
    Rule("R9012", "resource", "医療機関番号 is not 10 digits (都道府県 01–47 + 点数表 1–3 + 7 digits)",
         "send the 10-digit insurance medical institution number"),
    Rule("K-INSTITUTION-MISMATCH", "resource", "resource 医療機関番号 differs from the bundle identifier's",
         "a bundle carries one institution's data"),
    Rule("R9013C", "resource", "Condition has no contained JP_Encounter", "contain the Encounter"),
    Rule("R9013O", "resource", "Observation has no contained JP_Encounter", "contain the Encounter"),
    Rule("R9014C", "resource", "Condition has no JP_eCS_Department extension", "add the department"),
    Rule("R9014O", "resource", "Observation has no JP_eCS_Department extension", "add the department"),
    Rule("K-CONDITION-ONSET", "resource", "Condition has no onsetDateTime", "send onsetDateTime"),
    Rule("K-CONDITION-CODE", "resource", "Condition code has no MEDIS 病名管理番号 coding",
         "code the disease with master-disease-keyNumber"),
    Rule("K-CONDITION-VERIFICATION", "resource", "Condition.verificationStatus missing", "send verificationStatus"),
    Rule("K-TAG", "resource", "meta.tag flag not allowed on this resource type",
         "LTS on all; UNINFORMED/UNDELIVERED on Condition only"),
    Rule("K-ALLERGY-CATEGORY", "resource", "AllergyIntolerance.category biologic is not allowed",
         "use medication, food or environment"),
    Rule("K-ALLERGY-CODE", "resource", "AllergyIntolerance.code.text missing", "send code.text"),
    Rule("K-OBS-CATEGORY", "resource", "Observation.category is not laboratory", "use category laboratory"),
    Rule("K-OBS-CODE", "resource", "Observation has no JLAC10 / CLINS list / uncoded coding",
         "code the result with JLAC10 or the uncoded code 99999999999999999"),
    Rule("K-TERM-JLAC10", "resource", "JLAC10 code is not in the CLINS core-lab or infection list",
         "send a code from the CLINS JLAC10 lists"),
    Rule("R3010", "resource", "medication code is not exactly one of YJ / 一般名処方 / NOCODED",
         "send one YJ code or one 一般名処方マスタ code (or NOCODED)"),
    Rule("K-TERM-GENERAL-ORDER", "resource", "一般名処方コード not in the 一般名処方マスタ",
         "check the code against the current 一般名処方マスタ"),
    Rule("K-MED-DOSAGE", "resource", "MedicationRequest has no coded dosageInstruction.timing",
         "send a JAMI 16-digit 用法 code (or the uncoded dummy)"),
    Rule("K-FHIR-STRUCTURE", "resource", "not valid FHIR R4 structure", "fix the element named in the message"),
    Rule("K-CONTRACT", "resource", "staging row breaks the data contract", "fix the column named in the message"),
    # --- consent / access / facility lines --------------------------------------------------------------
    Rule("K-CONSENT", "line", "Consent record cannot be used", "fix the field named in the message"),
    Rule("K-AUDIT", "line", "AuditEvent record cannot be used", "fix the field named in the message"),
    Rule("K-FACILITY", "line", "facility registry row cannot be used", "fix the column named in the message"),
    # --- checkup files (pipelines/checkups): 特定健診 XML archives and eCheckup results ---------------------
    # scope `document` = one person's CDA document inside an archive; `item` = one checkup item of a person
    Rule("K-ZIP", "file", "checkup archive is not a readable, safe zip",
         "send one plain (unencrypted) zip with relative member names and XML members of normal size"),
    Rule("K-CHECKUP-NAME", "file", "checkup archive name is not <提出元>_<提出先>_<提出日><回数>_<実施区分>.zip",
         "name the archive like 1312345678_01130012_202504150_1.zip (sender as in index.xml)"),
    Rule("K-CHECKUP-COUNT", "file", "index.xml / summary.xml missing, unreadable or counting other than the "
         "person documents held", "re-create the archive so totalRecordCount and totalSubjectCount match its files"),
    Rule("K-XML", "document", "checkup XML is not well-formed", "re-send the complete document"),
    Rule("K-XML-UNSAFE", "document", "checkup XML declares a DTD or entities (refused unexpanded)",
         "send the XML without a DOCTYPE: the national format has none"),
    Rule("K-CHECKUP", "document", "checkup document lacks a required header field",
         "send the insured person's ids, sex, birth date, 健診実施日, program code, 健診機関番号 and document id"),
    Rule("K-CHECKUP-REPEAT", "document", "checkup document reports an item more than once",
         "report each item once per checkup (a second reading has an item code of its own)"),
    Rule("K-CHECKUP-ITEM", "item", "item code is not a 特定健診 item code (1.2.392.200119.6.1005)",
         "code the item from the 特定健診項目コード list (第4期)"),
    Rule("K-CHECKUP-RANGE", "item", "value outside the item's plausible input limits",
         "check the value and its unit; flag results beyond the measurable range as LX / HX"),
    Rule("K-CHECKUP-BMI", "item", "BMI does not match height and weight",
         "send BMI = weight / height² (kg/m²) from the same measurements"),
    Rule("K-CHECKUP-BP", "item", "systolic blood pressure below diastolic in the same reading",
         "check the reading: systolic and diastolic may be swapped"),
]

RULES: dict[str, Rule] = {r.rule_id: r for r in _RULES}
