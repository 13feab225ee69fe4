-- Karte warehouse layout. One schema per layer (= Dagster group = asset key prefix).
-- Every statement is idempotent: the file runs at every connection that may write.

CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS shared;
CREATE SCHEMA IF NOT EXISTS reports;

CREATE SEQUENCE IF NOT EXISTS ops.batch_id_seq START 1;
CREATE SEQUENCE IF NOT EXISTS ops.file_id_seq START 1;
CREATE SEQUENCE IF NOT EXISTS raw.raw_id_seq START 1;
CREATE SEQUENCE IF NOT EXISTS raw.bundle_key_seq START 1;

-- Keys: only on tables that grow by a handful of rows a run (batches, watermarks, the compiled views, the
-- sighting cache, whose INSERT OR REPLACE needs one). A table with a row per file, bundle or record has its
-- grain stated, kept by the statement that writes it (an anti-join, a watermark) and checked by a blocking
-- asset check over the rows a run wrote (pipelines/warehouse/grain.py): a key is an ART index DuckDB rewrites at
-- each checkpoint that touches its table, 70-180 ms a table for ≈ 90,000 rows (5 ms without) at 16 × the
-- bench sample, growing with the table (docs/capacity.md, fifteenth session). Warehouses created with those
-- keys keep them (DuckDB cannot drop a constraint); both work.

-- ops: bookkeeping ---------------------------------------------------------------------------------

-- grain: one row per ingest run
CREATE TABLE IF NOT EXISTS ops.batch (
    batch_id     BIGINT PRIMARY KEY,
    started_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP,
    inbox        VARCHAR,
    -- landing's file counts (pipelines/ingest/landing.py): seen = new + skipped; skipped includes unchanged
    files_seen              BIGINT,
    files_new               BIGINT,
    files_skipped_duplicate BIGINT,
    files_unchanged         BIGINT
);
-- warehouses from before the landing counts were kept
ALTER TABLE ops.batch ADD COLUMN IF NOT EXISTS files_seen BIGINT;
ALTER TABLE ops.batch ADD COLUMN IF NOT EXISTS files_new BIGINT;
ALTER TABLE ops.batch ADD COLUMN IF NOT EXISTS files_skipped_duplicate BIGINT;
ALTER TABLE ops.batch ADD COLUMN IF NOT EXISTS files_unchanged BIGINT;

-- grain: one row per distinct file content (sha256) ever landed; file_id and sha256 each unique (no key:
-- landing adds only unseen hashes, numbered after the largest file id)
CREATE TABLE IF NOT EXISTS ops.file_manifest (
    file_id      BIGINT NOT NULL,
    sha256       VARCHAR NOT NULL,
    path         VARCHAR NOT NULL,     -- relative to the inbox
    kind         VARCHAR NOT NULL,     -- fhir | consent | access | facilities
    sender       VARCHAR,              -- 医療機関番号 from the file name, where it carries one
    size_bytes   BIGINT NOT NULL,
    batch_id     BIGINT NOT NULL,
    landed_at    TIMESTAMP NOT NULL,
    parsed       BOOLEAN NOT NULL DEFAULT false,
    reported_batch_id BIGINT            -- the run whose summary counted this file (set once all its records ended somewhere)
);

-- grain: one row per inbox path: the hash last computed for its (size, mtime), so re-runs need not re-read
CREATE TABLE IF NOT EXISTS ops.file_sighting_cache (
    path         VARCHAR PRIMARY KEY,
    size_bytes   BIGINT NOT NULL,
    mtime_ns     BIGINT NOT NULL,
    sha256       VARCHAR NOT NULL
);

-- grain: one row per file path seen in a batch (new or a duplicate of a landed file)
CREATE TABLE IF NOT EXISTS ops.file_sighting (
    batch_id     BIGINT NOT NULL,
    path         VARCHAR NOT NULL,
    sha256       VARCHAR NOT NULL,
    file_id      BIGINT NOT NULL,
    is_new       BOOLEAN NOT NULL
);

-- grain: one row per consumer (asset) of an append-only id stream: how far it has read
CREATE TABLE IF NOT EXISTS ops.watermark (
    consumer     VARCHAR PRIMARY KEY,
    last_id      BIGINT NOT NULL
);

-- grain: one row per (staging view file, carried columns, view compiler) key: compiled SQL a later process reuses
-- (pipelines/ingest/flatten.py)
CREATE TABLE IF NOT EXISTS ops.compiled_view (
    key           VARCHAR PRIMARY KEY,
    view          VARCHAR,
    before_source VARCHAR,
    after_source  VARCHAR
);

-- grain: one row per rejected unit (file, line, bundle or resource) and rule
CREATE TABLE IF NOT EXISTS ops.quarantine (
    batch_id          BIGINT NOT NULL,
    file_id           BIGINT,
    source_file       VARCHAR NOT NULL,
    line_no           INTEGER,          -- 1-based line for NDJSON / CSV
    entry_index       INTEGER,          -- 0-based Bundle.entry index
    bundle_key        BIGINT,
    raw_id            BIGINT,           -- set for resource-level rejections
    scope             VARCHAR NOT NULL, -- file | line | bundle | resource
    institution_number VARCHAR,
    bundle_identifier VARCHAR,
    resource_type     VARCHAR,
    resource_identifier VARCHAR,
    rule_id           VARCHAR NOT NULL,
    message           VARCHAR NOT NULL,
    record_count      INTEGER NOT NULL, -- input records this rejection accounts for
    raw               VARCHAR           -- the rejected text, verbatim where it could be read
);

-- grain: one row per raw record: where it ended (loaded / duplicate / tombstoned / quarantined); no key: each
-- step records outcomes only for the raw ids past its watermark that have none
CREATE TABLE IF NOT EXISTS ops.record_outcome (
    raw_id       BIGINT NOT NULL,
    batch_id     BIGINT NOT NULL,
    outcome      VARCHAR NOT NULL,
    table_name   VARCHAR
);

-- raw: verbatim input + provenance ------------------------------------------------------------------

-- grain: one row per submitted bundle (entries live in raw.resource); bundle_key numbered by the raw step
CREATE TABLE IF NOT EXISTS raw.bundle (
    bundle_key   BIGINT NOT NULL,
    file_id      BIGINT NOT NULL,
    batch_id     BIGINT NOT NULL,
    line_no      INTEGER NOT NULL,
    entry_count  INTEGER NOT NULL,
    entry_types  VARCHAR[] NOT NULL,   -- resourceType of each entry, in order
    first_raw_id BIGINT,
    last_raw_id  BIGINT,
    envelope     JSON NOT NULL          -- the Bundle without its entries
);

-- raw.resource (one row per input record: a bundle entry, an NDJSON resource, a registry CSV row or a 特定健診
-- document) is a view over Parquet files beside the warehouse (pipelines/warehouse/raw_lake.py), made at connect.
-- grain: one row per committed file of it, in raw id order.
CREATE TABLE IF NOT EXISTS raw.resource_file (
    path          VARCHAR NOT NULL,  -- absolute; written into <warehouse>.raw/
    first_raw_id  BIGINT NOT NULL,
    last_raw_id   BIGINT NOT NULL,
    row_count     BIGINT NOT NULL
);

-- staging tables the stages read before their first write (the others take their columns from the
-- ViewDefinition + contract on first use)

-- grain: one row per raw FHIR resource the raw step ran the fast structure check on, as it parsed it (fast
-- structure mode, pipelines/ingest/raw_read.py); problem is NULL when it passed. The structure step reads
-- this instead of parsing every resource again, and checks any resource without a row itself.
CREATE TABLE IF NOT EXISTS staging.fast_structure_check (
    raw_id  BIGINT NOT NULL,
    problem VARCHAR
);

-- grain: one row per source of FHIR resources (a sender's 医療機関番号, or the kind of feed for files without
-- one): the first file (lowest file id) that brought it any, which the structure step checks in full
-- (pipelines/ingest/structure.py keeps it, replacing a row only by a lower file id; no key, as above)
CREATE TABLE IF NOT EXISTS ops.source_first_file (
    source   VARCHAR NOT NULL,
    file_id  BIGINT NOT NULL
);

-- grain: one row per supporting entry of an accepted document (neither its header, its Patient nor clinical
-- data; a checkup report's group Observations). Declared, not made by its first write: document staging and
-- checkup staging both append to it and may run at the same time (pipelines/ingest/schedule.py).
CREATE TABLE IF NOT EXISTS staging.document_resource (
    raw_id        BIGINT,
    bundle_key    BIGINT,
    file_id       BIGINT,
    document_key  VARCHAR,
    resource_type VARCHAR,
    profile       VARCHAR
);

-- grain: one row per raw record that failed the fhir.resources structure check
CREATE TABLE IF NOT EXISTS staging.structure_failure (
    raw_id          BIGINT NOT NULL,
    structure_error VARCHAR NOT NULL
);

-- grain: one row: the newest link of core.access_event's hash chain (pipelines/audit/chain.py), so deleting the
-- last rows of the access log is detected too; written in the transaction that chains new rows
CREATE TABLE IF NOT EXISTS ops.access_chain_head (
    chain_seq    BIGINT NOT NULL,
    row_hash     VARCHAR NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- grain: one row per submitted bundle with its envelope verdict (written by pipelines/ingest/bundles.py;
-- declared here because every resource stage reads it, even in a run that has seen no bundle yet)
CREATE TABLE IF NOT EXISTS staging.bundle (
    bundle_key          BIGINT NOT NULL,
    file_id             BIGINT NOT NULL,
    batch_id            BIGINT NOT NULL,
    bundle_profile      VARCHAR,
    bundle_type         VARCHAR,
    bundle_identifier   VARCHAR,
    institution_number  VARCHAR,
    is_clins            BOOLEAN NOT NULL,
    document_category   VARCHAR,
    document_key        VARCHAR,
    composition_raw_id  BIGINT,
    patient_key         VARCHAR,
    patient_raw_id      BIGINT,
    patient_full_url    VARCHAR,
    patient_resource_id VARCHAR,
    accepted            BOOLEAN NOT NULL
);

-- grain: one row per verification of core.access_event's hash chain that found it intact: every row up to
-- chain_seq hashed to row_hash at verified_at (is_full: re-hashed from the genesis; otherwise from the previous
-- checkpoint). The next verification re-hashes only the rows after the newest (pipelines/audit/chain.py).
CREATE TABLE IF NOT EXISTS ops.access_chain_checkpoint (
    chain_seq    BIGINT NOT NULL,
    row_hash     VARCHAR NOT NULL,
    verified_at  TIMESTAMPTZ NOT NULL,
    is_full      BOOLEAN NOT NULL,
    rows_hashed  BIGINT NOT NULL
);
