"""The checkup formats' vocabulary: OIDs of the 特定健診 CDA documents and the eCheckupReport FHIR IG.

Quoted from docs/domain_spec.md §3 and the official sample Bundle-eCheckupReport-Sample-01 unless marked
"(ours)" or "(unconfirmed)": the MHLW 特定健診 XML specification itself was not available, so the CDA roots of
the insured person's identifiers are the ones the national format is known to use, and the parser also
accepts the JP Core OIDs for the same identifiers.
"""

# --- code systems shared by both forms ------------------------------------------------------------------
ITEM_OID = "1.2.392.200119.6.1005"  # 特定健診項目コード (CDA codeSystem)
ITEM_SYSTEM = "urn:oid:" + ITEM_OID  # the same, as a FHIR system
PROGRAM_OID = "1.2.392.200119.6.1002"  # 健診プログラムサービスコード
PROGRAM_SYSTEM = "urn:oid:" + PROGRAM_OID
METHOD_SYSTEM = "urn:oid:1.2.392.200119.6.1007"  # 検査方法
CHOICE_OID_PREFIX = "1.2.392.200119.6."  # 2xxx / 1008 / 3001 … choice tables
REPORT_CATEGORY_OID = "2.16.840.1.113883.2.2.1.6.1001"  # 健診結果報告区分 10 / 40 / 90 (eCheckup package)

#: 健診プログラムサービスコード (domain_spec §3.1)
PROGRAM_NAMES = {
    "000": "不明", "010": "特定健診", "020": "広域連合の保健事業", "030": "事業者健診", "040": "学校健診",
    "060": "がん検診", "090": "肝炎検診", "990": "その他",
}
SPECIFIC_CHECKUP = "010"  # 特定健診
EMPLOYER_CHECKUP = "030"  # 事業者健診

# --- FHIR (eCheckupReport IG, §3.2) -----------------------------------------------------------------------
ECHECKUP_BASE = "http://jpfhir.jp/fhir/eCheckup/StructureDefinition/"
COMPOSITION_PROFILE = ECHECKUP_BASE + "JP_Composition_eCheckupGeneral"
OBSERVATION_PROFILE = ECHECKUP_BASE + "JP_Observation_eCheckupGeneral"
ENCOUNTER_PROFILE = ECHECKUP_BASE + "JP_Encounter_eCheckupGeneral"
ORGANIZATION_PROFILE = ECHECKUP_BASE + "JP_Organization_eCheckupGeneral"
INSURER_PROFILE = ECHECKUP_BASE + "JP_OrganizationInsurer_eCheckupGeneral"
PRACTITIONER_PROFILE = ECHECKUP_BASE + "JP_Practitioner_eCheckupGeneral"
COVERAGE_SERVICE_PROFILE = ECHECKUP_BASE + "JP_CoverageService_eCheckupGeneral"
COVERAGE_INSURANCE_PROFILE = ECHECKUP_BASE + "JP_CoverageInsurance_eCheckupGeneral"
SECTION_SYSTEM = "http://jpfhir.jp/fhir/eCheckup/CodeSystem/section-code"
REPORT_CATEGORY_SYSTEM = "http://jpfhir.jp/fhir/eCheckup/CodeSystem/checkup-report-category"
ENCOUNTER_CLASS_SYSTEM = "http://jpfhir.jp/fhir/eCheckup/CodeSystem/encounter-category"
DOCUMENT_INSTANCE_ID = "http://jpfhir.jp/fhir/core/IdSystem/documentInstance-identifier"
EXT_SYMBOL = "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Coverage_InsuredPersonSymbol"
EXT_NUMBER = "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Coverage_InsuredPersonNumber"
EXT_SUBNUMBER = "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Coverage_InsuredPersonSubNumber"
EXT_ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
COVERAGE_SERVICE_TYPE = "urn:oid:1.2.392.200119.6.208"  # 受診券券面種別
INSURANCE_MAJOR_CATEGORY = "urn:oid:1.2.392.100495.20.2.61"
INSURED_PERSON_CATEGORY = "urn:oid:1.2.392.100495.20.2.62"  # 1 被保険者, 2 被扶養者
CHECKUP_PATIENT_ID_PREFIX = "urn:oid:1.2.392.200119.6.102.1"  # + 健診機関番号 (as in the official sample)
#: Composition.type codes of a 健診結果報告書 (both packages' codes occur)
DOC_TYPES = ("53576-5", "JPGCHKUP01")
#: sections: 特定健診 検査結果 / 問診結果, 事業者健診 検査 / 問診 (section-code CodeSystem)
SECTION_TITLES = {"01011": "特定健診検査結果セクション", "01012": "特定健診問診結果セクション",
                  "01031": "事業者健診検査結果セクション", "01032": "事業者健診問診結果セクション"}

# --- CDA (特定健診 XML, §3.1) -------------------------------------------------------------------------------
CDA_NAMESPACE = "urn:hl7-org:v3"
XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"
#: recordTarget/patientRole/id roots of the insured person's identifier parts (unconfirmed: the national
#: format's roots) and the JP Core OIDs of the same parts, which the parser accepts too
MEMBER_ID_ROOTS = {
    "insurer": ("1.2.392.200119.6.101", "1.2.392.100495.20.3.61"),  # 保険者番号
    "symbol": ("1.2.392.200119.6.204", "1.2.392.100495.20.3.62"),  # 被保険者証等記号
    "number": ("1.2.392.200119.6.205", "1.2.392.100495.20.3.63"),  # 被保険者証等番号
    "branch": ("1.2.392.200119.6.211",),  # 枝番
}
INSTITUTION_ROOT = "1.2.392.200119.6.102"  # 健診機関番号 (author/custodian organization id; unconfirmed)
GENDER_OID = "1.2.392.200119.6.1104"  # 1 男 2 女 (unconfirmed; HL7 M/F accepted too)
INTERPRETATION_OID = "2.16.840.1.113883.5.83"  # HL7 ObservationInterpretation (H, L, N, LX, HX…)
#: The index.xml / summary.xml namespace our writer uses (unconfirmed); the reader matches local names only.
ARCHIVE_NAMESPACE = "http://tokuteikenshin.jp/checkup/2007"
