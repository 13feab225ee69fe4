"""Canonical URLs, identifier systems and code systems of the JP-CLINS implementation guide.

Every string here is quoted from docs/domain_spec.md (compiled from the JAMI IG packages); nothing
else in the code base should spell one of these URLs out.
"""

# --- Profiles -------------------------------------------------------------------------------------
BUNDLE_CLINS = "http://jpfhir.jp/fhir/clins/StructureDefinition/JP_Bundle_CLINS"
BUNDLE_EREFERRAL = "http://jpfhir.jp/fhir/clins/StructureDefinition/JP_Bundle_eReferral"
BUNDLE_EDISCHARGE = "http://jpfhir.jp/fhir/clins/StructureDefinition/JP_Bundle_eDischargeSummary"
BUNDLE_EPCS = "http://jpfhir.jp/fhir/clins/StructureDefinition/JP_Bundle_ePCS"

BUNDLE_ECHECKUP_CLINS = "http://jpfhir.jp/fhir/clins/StructureDefinition/JP_Bundle_eCheckupGeneral"
BUNDLE_ECHECKUP = "http://jpfhir.jp/fhir/eCheckup/StructureDefinition/JP_Bundle_eCheckupGeneral"

PATIENT_ECS = "http://jpfhir.jp/fhir/eCS/StructureDefinition/JP_Patient_eCS"
PATIENT_ECS_CLINS = "http://jpfhir.jp/fhir/clins/StructureDefinition/JP_Patient_eCS"
ENTRY_PROFILES = {
    "Condition": "http://jpfhir.jp/fhir/eCS/StructureDefinition/JP_Condition_eCS",
    "AllergyIntolerance": "http://jpfhir.jp/fhir/eCS/StructureDefinition/JP_AllergyIntolerance_eCS",
    "Observation": "http://jpfhir.jp/fhir/eCS/StructureDefinition/JP_Observation_LabResult_eCS",
    "MedicationRequest": "http://jpfhir.jp/fhir/eCS/StructureDefinition/JP_MedicationRequest_eCS",
}
JP_ENCOUNTER = "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Encounter"

# --- Identifier systems ----------------------------------------------------------------------------
BUNDLE_IDENTIFIER = "http://jpfhir.jp/fhir/clins/bundle-identifier"
INSURANCE_MEMBER_ID = "http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID"
INSTITUTION_NO = "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no"
RESOURCE_INSTANCE_ID = "http://jpfhir.jp/fhir/core/IdSystem/resourceInstance-identifier"
LOCAL_PATIENT_ID_PREFIX = "urn:oid:1.2.392.100495.20.3.51.1"
INSURER_NUMBER = "urn:oid:1.2.392.100495.20.3.61"  # 保険者番号 (eCheckup insurer Organization)

# --- Extensions -------------------------------------------------------------------------------------
EXT_INSTITUTION_NUMBER = "http://jpfhir.jp/fhir/clins/Extension/StructureDefinition/JP_eCS_InstitutionNumber"
EXT_DEPARTMENT = "http://jpfhir.jp/fhir/eCS/Extension/StructureDefinition/JP_eCS_Department"
EXT_DIAGNOSIS_TYPE = "http://jpfhir.jp/fhir/eCS/Extension/StructureDefinition/JP_eCS_DiagnosisType"

# --- Code systems -----------------------------------------------------------------------------------
BUNDLE_RESOURCE_TYPE_CS = "http://jpfhir.jp/fhir/clins/CodeSystem/BundleResourceType_CS"
INDICATION_CS = "http://jpfhir.jp/fhir/clins/CodeSystem/JP_ehrshrs_indication"  # LTS / UNINFORMED / UNDELIVERED
MEDIS_DISEASE = "http://medis.or.jp/CodeSystem/master-disease-keyNumber"
ICD10 = "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/ICD10-2013-full"
JLAC10_SYSTEMS = (
    "http://medis.or.jp/CodeSystem/master-JLAC10-17digits",
    "http://jpfhir.jp/fhir/core/CodeSystem/JP_ObservationLabResultCode_CS",
    "urn:oid:1.2.392.200119.4.504",
    "http://jpfhir.jp/fhir/clins/CodeSystem/JLAC10/JP_CLINS_ObsLabResult_CoreLabo_CS",
    "http://jpfhir.jp/fhir/clins/CodeSystem/JLAC10/JP_CLINS_ObsLabResult_InfectionLabo_CS",
)
CORE_LABO_CS = JLAC10_SYSTEMS[3]
INFECTION_LABO_CS = JLAC10_SYSTEMS[4]
UNCODED_LAB_CS = "http://jpfhir.jp/fhir/clins/CodeSystem/JP_CLINS_ObsLabResult_Uncoded_CS"
YJ_CODE = "http://capstandard.jp/iyaku.info/CodeSystem/YJ-code"
GENERAL_ORDER_CODE = "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/MedicationGeneralOrderCode"
MEDICATION_NOCODED = "http://jpfhir.jp/fhir/eCS/CodeSystem/MedicationCodeNocoded_CS"
JAMI_USAGE = "http://jami.jp/CodeSystem/MedicationUsage"
DOC_SECTION_CS = "http://jpfhir.jp/fhir/clins/CodeSystem/document-section"

# --- Karte's own code list: kinds of information (the category of every clinical row and of consent) --
INFORMATION_KIND_SYSTEM = "urn:karte:information-kind"
INFORMATION_KINDS = {
    "condition": "傷病名",
    "infection": "感染症",
    "drug-contraindication": "薬剤禁忌",
    "allergy": "アレルギー",
    "lab-result": "検査",
    "prescription": "処方",
    "referral": "診療情報提供書",
    "discharge-summary": "退院時サマリー",
    "checkup": "健診結果",
}


def strip_version(canonical: str | None) -> str | None:
    """`meta.profile` may carry `|version` (e.g. `...JP_Bundle_CLINS|1`); lookups use the bare URL."""
    return canonical.split("|", 1)[0] if canonical else canonical


# --- Further canonical URLs (added with pipelines/generate; quoted from docs/domain_spec.md §1–§5 and the
# --- official examples in shared/fixtures/jp-clins/examples) ----------------------------------------------
JP_CORE_PROFILE_BASE = "http://jpfhir.jp/fhir/core/StructureDefinition/"  # + JP_Condition, JP_Specimen, ...
JP_SPECIMEN = JP_CORE_PROFILE_BASE + "JP_Specimen"
JP_PRACTITIONER = JP_CORE_PROFILE_BASE + "JP_Practitioner"
ECS_PROFILE_BASE = "http://jpfhir.jp/fhir/eCS/StructureDefinition/"
ENCOUNTER_ECS = ECS_PROFILE_BASE + "JP_Encounter_eCS"
PRACTITIONER_ECS = ECS_PROFILE_BASE + "JP_Practitioner_eCS"
ORGANIZATION_ECS = ECS_PROFILE_BASE + "JP_Organization_eCS"
DOCUMENT_REFERENCE_ECS = ECS_PROFILE_BASE + "JP_DocumentReference_eCS"
COMPOSITION_EREFERRAL = "http://jpfhir.jp/fhir/eReferral/StructureDefinition/JP_Composition_eReferral"
COMPOSITION_EDISCHARGE = "http://jpfhir.jp/fhir/eDischargeSummary/StructureDefinition/JP_Composition_eDischargeSummary"
#: not accepted by Karte: the pre-CLINS standalone eReferral bundle and the generic JP_Bundle
LEGACY_BUNDLE_EREFERRAL = "http://jpfhir.jp/fhir/eReferral/StructureDefinition/JP_Bundle_eReferral"
GENERIC_JP_BUNDLE = "http://jpfhir.jp/fhir/StructureDefinition/JP_Bundle"

EXT_EN_REPRESENTATION = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"  # IDE / SYL
EXT_COMPOSITION_VERSION = "http://hl7.org/fhir/StructureDefinition/composition-clinicaldocument-versionNumber"
EXT_PERIOD_OF_USE = "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_MedicationDosage_PeriodOfUse"

PRACTITIONER_ID_PREFIX = "urn:oid:1.2.392.100495.20.3.41.1"  # + 10-digit 医療機関番号
RP_GROUP_NUMBER = "http://jpfhir.jp/fhir/core/mhlw/IdSystem/Medication-RPGroupNumber"
RP_ADMINISTRATION_INDEX = "http://jpfhir.jp/fhir/core/mhlw/IdSystem/MedicationAdministrationIndex"

SSMIX_DEPARTMENT = "http://jami.jp/SS-MIX2/CodeSystem/ClinicalDepartment"
HOT9 = "http://medis.or.jp/CodeSystem/master-HOT9"
MERIT9_UNIT = "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/MedicationUnitMERIT9Code"
MEDICATION_STRENGTH_TYPE = "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/MedicationIngredientStrengthStrengthType"
MEDICATION_CATEGORY_MERIT9 = "http://jpfhir.jp/fhir/core/CodeSystem/JP_MedicationCategoryMERIT9_CS"  # OHP / DCG ...
ROUTE_CODES = "http://jpfhir.jp/fhir/core/CodeSystem/route-codes"
JAMI_METHOD_BASIC_USAGE = "http://jami.jp/CodeSystem/MedicationMethodBasicUsage"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY_CS = "http://jpfhir.jp/fhir/core/CodeSystem/JP_SimpleObservationCategory_CS"
SPECIMEN_MATERIAL_CS = "http://jpfhir.jp/fhir/core/CodeSystem/JP_ObservationSampleMaterialCode_CS"
V2_SPECIMEN_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0487"
LAB_LOCAL_CODE_CS = "http://jpfhir.jp/fhir/clins/CodeSystem/JP_CLINS_ObsLabResult_LocalCode_CS"
CHOICE_NEG_POS = "urn:oid:1.2.392.200119.6.2101"  # 1 陰性, 2 陽性
CHOICE_URINE_QUALITATIVE = "urn:oid:1.2.392.200119.6.2102"  # 1 −, 2 ±, 3 +, 4 ++, 5 +++
OBSERVATION_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VER_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
DIAGNOSIS_TYPE_CS = "http://terminology.hl7.org/CodeSystem/ex-diagnosistype"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
JFAGY_FOOD = "http://jpfhir.jp/fhir/core/CodeSystem/JP_JfagyFoodAllergen_CS"
JFAGY_MEDICATION_GCM = "http://jpfhir.jp/fhir/core/CodeSystem/GCM/JP_JfagyMedicationAllergen_CS"
JFAGY_NON_FOOD = "http://jpfhir.jp/fhir/core/CodeSystem/JP_JfagyNonFoodNonMedicationAllergen_CS"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"  # AMB / IMP; OPTIN / OPTOUT
DOC_TYPECODES = "http://jpfhir.jp/fhir/Common/CodeSystem/doc-typecodes"
DOC_SUBTYPECODES = "http://jpfhir.jp/fhir/Common/CodeSystem/doc-subtypecodes"
DISCHARGE_DISPOSITION = "http://jpfhir.jp/fhir/Common/CodeSystem/discharge-disposition"
ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
LOINC = "http://loinc.org"

# --- Consent (our model, domain_spec §5) and IHE BALP AuditEvent -------------------------------------
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"  # patient-privacy
CONSENT_CATEGORY_CODE = "59284-0"  # LOINC "Patient Consent"
V3_PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"  # IRCP
BALP_PATIENT_READ = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"  # rest
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"  # read
AUDIT_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"  # 1 Person, 2 System Object
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"  # 1 Patient, 4 Domain Resource
DICOM_DCM = "http://dicom.nema.org/resources/ontology/DCM"  # 110153 Source Role ID, 110152 Destination Role ID
SECURITY_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"  # TREAT / ETREAT
#: AuditEvent.entity.detail.type that carries the Karte information kind viewed (valueString = kind code)
AUDIT_DETAIL_INFORMATION_KIND = "information-kind"
#: Karte's own code system of staff roles (AuditEvent.agent.role of the user who viewed); the codes and which
#: roles may view clinical data: data/reference/staff_roles.csv (docs/audit.md)
STAFF_ROLE_SYSTEM = "urn:karte:staff-role"
