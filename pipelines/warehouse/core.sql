-- core: deduplicated, pseudonymous, one code per concept. No raw identifier, name, address or phone.
-- Clinical tables share: patient_key, institution_number, category (urn:karte:information-kind),
-- the IG flags, identity (institution_number + resource_identifier), last_updated, is_tombstoned and
-- provenance back to raw (raw_id, bundle_key, file_id).
--
-- No PRIMARY KEY: each upserted table's grain (its identity, stated above it) is kept by the upsert
-- (pipelines/ingest/upsert.py: one winning row per identity replaces the current one) and checked by the
-- `identity_is_unique` asset check; a document's sections and supporting entries are written with it (each
-- supporting entry's raw record gets one outcome, checked by `one_outcome_per_record`: schema.sql). A key would
-- be an ART index, which DuckDB maintains row by row on every insert, must hold in memory and rewrites at each
-- checkpoint that touches the table: at 4 × the bench sample it cost the checkup upsert 0.3-0.4 s and the single
-- process ≈ 40 MiB of its peak, and at national scale (billions of checkup items) it would not fit at all
-- (docs/capacity.md, fourteenth session). Warehouses created before keep their keys; both work.

-- grain: one row per patient (keyed hash of the NFKC-normalised 被保険者個人識別子)
CREATE TABLE IF NOT EXISTS core.patient (
    patient_key        VARCHAR NOT NULL,
    gender             VARCHAR,
    birth_year         INTEGER,
    birth_month        INTEGER,
    prefecture_code    VARCHAR,   -- JIS 01–47 from the address' 都道府県; the rest of the address is dropped
    last_updated       TIMESTAMPTZ,
    raw_id             BIGINT NOT NULL
);

-- grain: one row per institution × resourceInstance identifier × occurrence (newest meta.lastUpdated wins)
CREATE TABLE IF NOT EXISTS core.condition (
    institution_number  VARCHAR NOT NULL,
    resource_identifier VARCHAR NOT NULL,
    identity_occurrence INTEGER NOT NULL,   -- >1 when a bundle reused the identifier for several resources
    patient_key         VARCHAR NOT NULL,
    category            VARCHAR NOT NULL,   -- condition
    medis_code          VARCHAR,
    icd10_code          VARCHAR,
    code_text           VARCHAR,
    clinical_status     VARCHAR,
    verification_status VARCHAR,
    is_suspected        BOOLEAN,            -- 疑い病名 (verificationStatus unconfirmed)
    department_code     VARCHAR,
    onset               VARCHAR,
    abatement           VARCHAR,
    recorded_date       VARCHAR,
    flag_lts            BOOLEAN NOT NULL,
    flag_uninformed     BOOLEAN NOT NULL,   -- 未告知: never in patient-facing output
    flag_undelivered    BOOLEAN NOT NULL,   -- 未提供: never shared
    document_key        VARCHAR,            -- set when it came inside a document
    last_updated        TIMESTAMPTZ,
    is_tombstoned       BOOLEAN NOT NULL,   -- entered-in-error
    raw_id              BIGINT NOT NULL,
    bundle_key          BIGINT,
    file_id             BIGINT NOT NULL
);

-- grain: one row per institution × resourceInstance identifier × occurrence
CREATE TABLE IF NOT EXISTS core.allergy (
    institution_number  VARCHAR NOT NULL,
    resource_identifier VARCHAR NOT NULL,
    identity_occurrence INTEGER NOT NULL,   -- >1 when a bundle reused the identifier for several resources
    patient_key         VARCHAR NOT NULL,
    category            VARCHAR NOT NULL,   -- drug-contraindication (category medication) | allergy
    allergy_category    VARCHAR,            -- the FHIR category as sent
    allergen_system     VARCHAR,
    allergen_code       VARCHAR,
    code_text           VARCHAR,
    clinical_status     VARCHAR,
    verification_status VARCHAR,
    criticality         VARCHAR,
    onset               VARCHAR,
    recorded_date       VARCHAR,
    flag_lts            BOOLEAN NOT NULL,
    flag_uninformed     BOOLEAN NOT NULL,
    flag_undelivered    BOOLEAN NOT NULL,
    document_key        VARCHAR,
    last_updated        TIMESTAMPTZ,
    is_tombstoned       BOOLEAN NOT NULL,
    raw_id              BIGINT NOT NULL,
    bundle_key          BIGINT,
    file_id             BIGINT NOT NULL
);

-- grain: one row per institution × resourceInstance identifier × occurrence
CREATE TABLE IF NOT EXISTS core.lab_result (
    institution_number  VARCHAR NOT NULL,
    resource_identifier VARCHAR NOT NULL,
    identity_occurrence INTEGER NOT NULL,   -- >1 when a bundle reused the identifier for several resources
    patient_key         VARCHAR NOT NULL,
    category            VARCHAR NOT NULL,   -- infection | lab-result
    jlac10_code         VARCHAR,            -- one column whatever system URI carried it
    clins_item          VARCHAR,            -- CLINS list item (ALB, HbA1c-NGSP, HBs-AG-RESULT…)
    local_code          VARCHAR,
    code_text           VARCHAR,
    status              VARCHAR,
    value_number        DOUBLE,
    value_unit          VARCHAR,
    value_code          VARCHAR,
    value_text          VARCHAR,
    interpretation      VARCHAR,
    specimen_code       VARCHAR,
    department_code     VARCHAR,
    effective           VARCHAR,
    issued              VARCHAR,
    flag_lts            BOOLEAN NOT NULL,
    flag_uninformed     BOOLEAN NOT NULL,
    flag_undelivered    BOOLEAN NOT NULL,
    document_key        VARCHAR,
    last_updated        TIMESTAMPTZ,
    is_tombstoned       BOOLEAN NOT NULL,
    raw_id              BIGINT NOT NULL,
    bundle_key          BIGINT,
    file_id             BIGINT NOT NULL
);

-- grain: one row per institution × resourceInstance identifier × occurrence (only from documents)
CREATE TABLE IF NOT EXISTS core.medication_request (
    institution_number  VARCHAR NOT NULL,
    resource_identifier VARCHAR NOT NULL,
    identity_occurrence INTEGER NOT NULL,   -- >1 when a bundle reused the identifier for several resources
    patient_key         VARCHAR NOT NULL,
    category            VARCHAR NOT NULL,   -- prescription
    yj_code             VARCHAR,
    general_order_code  VARCHAR,
    medication_text     VARCHAR,
    usage_code          VARCHAR,
    usage_text          VARCHAR,
    dose_value          DOUBLE,
    dose_unit           VARCHAR,
    duration_days       DOUBLE,
    rp_number           VARCHAR,
    order_category      VARCHAR,            -- OHP 外来 / IHP 入院 / DCG 退院
    authored_on         VARCHAR,
    flag_lts            BOOLEAN NOT NULL,
    flag_uninformed     BOOLEAN NOT NULL,
    flag_undelivered    BOOLEAN NOT NULL,
    document_key        VARCHAR,
    last_updated        TIMESTAMPTZ,
    is_tombstoned       BOOLEAN NOT NULL,
    raw_id              BIGINT NOT NULL,
    bundle_key          BIGINT,
    file_id             BIGINT NOT NULL
);

-- grain: one row per document (institution × Composition identifier; newest version wins)
CREATE TABLE IF NOT EXISTS core.document (
    document_key        VARCHAR NOT NULL,   -- institution_number || '|' || document_identifier
    institution_number  VARCHAR NOT NULL,
    document_identifier VARCHAR NOT NULL,
    patient_key         VARCHAR NOT NULL,
    category            VARCHAR NOT NULL,      -- referral | discharge-summary | patient-summary
    type_code           VARCHAR NOT NULL,
    subtype_code        VARCHAR,
    title               VARCHAR,
    document_date       VARCHAR,
    version_number      VARCHAR,
    entry_count         INTEGER NOT NULL,
    last_updated        TIMESTAMPTZ,
    is_tombstoned       BOOLEAN NOT NULL,
    raw_id              BIGINT NOT NULL,
    bundle_key          BIGINT NOT NULL,
    file_id             BIGINT NOT NULL,
    recipient_institution VARCHAR            -- 紹介先 医療機関番号 of a referral (section 910 Organization)
);
ALTER TABLE core.document ADD COLUMN IF NOT EXISTS recipient_institution VARCHAR;

-- grain: one row per document × section (any depth) × entry reference
CREATE TABLE IF NOT EXISTS core.document_section (
    document_key        VARCHAR NOT NULL,
    section_code        VARCHAR,
    section_title       VARCHAR,
    entry_resource_type VARCHAR,
    entry_raw_id        BIGINT
);

-- grain: one row per supporting entry of a document that is not itself clinical data
-- (Practitioner, Organization, Encounter, DocumentReference, CarePlan, Observation_Common…)
CREATE TABLE IF NOT EXISTS core.document_resource (
    document_key        VARCHAR NOT NULL,
    resource_type       VARCHAR NOT NULL,
    profile             VARCHAR,
    raw_id              BIGINT NOT NULL
);

-- grain: one row per facility (医療機関番号); latest registry row wins
CREATE TABLE IF NOT EXISTS core.facility (
    institution_number  VARCHAR NOT NULL,
    facility_name       VARCHAR,
    prefecture_code     VARCHAR NOT NULL,
    score_table         VARCHAR NOT NULL,   -- 点数表: 1 医科, 3 歯科
    facility_type       VARCHAR NOT NULL,   -- hospital | clinic | dental
    bed_count           INTEGER,
    bed_band            VARCHAR,            -- hospitals: <200 | 200-399 | 400+ (the 医療施設調査 bands); else null
    applied_on          DATE,
    connected_on        DATE,
    first_submission_on DATE,
    first_view_on       DATE,
    raw_id              BIGINT NOT NULL
);
-- warehouses created before bed_band existed get the column (filled by the next registry row of each facility)
ALTER TABLE core.facility ADD COLUMN IF NOT EXISTS bed_band VARCHAR;

-- grain: one row per Consent resource × kind × grantee (kind/grantee null = all)
CREATE TABLE IF NOT EXISTS core.consent_event (
    consent_id          VARCHAR NOT NULL,
    patient_key         VARCHAR NOT NULL,
    event_time          TIMESTAMPTZ NOT NULL,
    status              VARCHAR NOT NULL,   -- active | inactive (withdrawn)
    provision_type      VARCHAR,            -- permit | deny
    kind                VARCHAR,            -- urn:karte:information-kind; null = every kind
    grantee             VARCHAR,            -- 医療機関番号; null = every facility
    period_start        TIMESTAMPTZ,
    period_end          TIMESTAMPTZ,
    raw_id              BIGINT NOT NULL
);

-- grain: one row per AuditEvent (a view of a patient's record)
CREATE TABLE IF NOT EXISTS core.access_event (
    access_id           VARCHAR NOT NULL,
    patient_key         VARCHAR NOT NULL,
    viewer              VARCHAR NOT NULL,   -- viewing facility 医療機関番号
    recorded            TIMESTAMPTZ NOT NULL,
    purpose             VARCHAR,            -- TREAT | ETREAT
    action              VARCHAR,
    outcome             VARCHAR,
    kinds               VARCHAR[],
    raw_id              BIGINT NOT NULL,
    staff_id            VARCHAR,            -- staff member: facility-local practitioner id (not a patient identifier)
    staff_role          VARCHAR,            -- urn:karte:staff-role (data/reference/staff_roles.csv)
    resource_refs       VARCHAR[],          -- resources named by the log: '<医療機関番号>|<resourceInstance id>'
    -- append-only hash chain (pipelines/audit/chain.py): chain_seq in insertion order, row_hash =
    -- sha256(previous row_hash || sha256(canonical content)); set in the transaction that inserts the row
    chain_seq           BIGINT,
    row_hash            VARCHAR
);
-- warehouses created before the audit columns existed get them (their rows are chained by the next run)
ALTER TABLE core.access_event ADD COLUMN IF NOT EXISTS staff_id VARCHAR;
ALTER TABLE core.access_event ADD COLUMN IF NOT EXISTS staff_role VARCHAR;
ALTER TABLE core.access_event ADD COLUMN IF NOT EXISTS resource_refs VARCHAR[];
ALTER TABLE core.access_event ADD COLUMN IF NOT EXISTS chain_seq BIGINT;
ALTER TABLE core.access_event ADD COLUMN IF NOT EXISTS row_hash VARCHAR;

-- grain: one row per permitting Consent × kind × grantee while that Consent is in force
-- ([valid_from, valid_to) half-open; valid_to NULL = open; grantee NULL = every facility). Derived from
-- core.consent_event by pipelines/consent/intervals.py; docs/consent.md states the rule.
CREATE TABLE IF NOT EXISTS core.consent_interval (
    patient_key         VARCHAR NOT NULL,
    kind                VARCHAR NOT NULL,
    grantee             VARCHAR,
    valid_from          TIMESTAMPTZ NOT NULL,
    valid_to            TIMESTAMPTZ,
    consent_id          VARCHAR NOT NULL
);

-- grain: one row per person × checkup (date, program) × item — the same row whichever form
-- (eCheckup FHIR document or 特定健診 XML archive) carried it; the latest arrival wins
CREATE TABLE IF NOT EXISTS core.checkup_result (
    patient_key         VARCHAR NOT NULL,
    checkup_date        DATE NOT NULL,
    program             VARCHAR NOT NULL,   -- 1.2.392.200119.6.1002: 010 特定健診, 030 事業者健診 …
    program_name        VARCHAR,
    item_code           VARCHAR NOT NULL,   -- 特定健診項目コード (1.2.392.200119.6.1005)
    item_name           VARCHAR,
    category            VARCHAR NOT NULL,   -- checkup
    value_type          VARCHAR,            -- PQ / CD / CO / ST
    value_number        DOUBLE,
    value_unit          VARCHAR,            -- UCUM
    value_code          VARCHAR,
    value_code_system   VARCHAR,
    value_text          VARCHAR,
    interpretation      VARCHAR,            -- H / L / N / LX (below input range) / HX (above)
    institution_number  VARCHAR,            -- the checkup organisation
    document_id         VARCHAR,
    source_form         VARCHAR NOT NULL,   -- fhir | xml
    is_tombstoned       BOOLEAN NOT NULL,
    raw_id              BIGINT NOT NULL,
    bundle_key          BIGINT,
    file_id             BIGINT NOT NULL
);
