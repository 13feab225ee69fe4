"""Core: staging rows become the current version of each identity. Newest meta.lastUpdated wins;
an older or equal version is counted as a duplicate; entered-in-error becomes a tombstone. Every
staged record gets exactly one ops.record_outcome row, in the same transaction as the upsert."""

from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb

from pipelines.audit.chain import chain_new_rows
from pipelines.config import REFERENCE_DIR
from pipelines.fhir.systems import INSTITUTION_NO
from pipelines.ingest.facility_registry import BED_BAND_SQL
from pipelines.ingest.pending import rows_pending
from pipelines.ingest.quarantine import record_outcomes
from pipelines.ingest.tables import table_columns
from pipelines.warehouse import get_watermark, set_watermark, transaction

ENTERED_IN_ERROR = "'entered-in-error'"


@dataclass(frozen=True)
class CoreTable:
    table: str  # core table name (= staging table name unless `staging` says otherwise)
    identity: tuple[str, ...]
    tombstone: str = "false"  # SQL over the staging row
    renames: dict[str, str] = field(default_factory=dict)  # core column → SQL over the staging row
    staging: str | None = None
    #: versioned: newest meta.lastUpdated wins; latest: the latest arrival wins (registries carry no
    #: version); immutable: events (consent, access) never change once recorded — a resend is a duplicate
    policy: str = "versioned"
    #: the stage whose watermark bounds what this table may read (default: its staging table's)
    upstream: str | None = None
    #: runs in the upsert's transaction right after the insert (access_event: extend the hash chain)
    after_insert: Callable[[duckdb.DuckDBPyConnection], object] | None = None
    #: the table's grain is its identity (every table but consent_event, whose identity is a Consent of several
    #: rows): of staged rows that tie on version and raw record, the last staged wins, so core never holds two
    #: (core.sql has no key to refuse them)
    one_row_per_identity: bool = True

    @property
    def staging_table(self) -> str:
        return f"staging.{self.staging or self.table}"

    @property
    def consumer(self) -> str:
        return f"core.{self.table}"


def _select_list(spec: CoreTable, core_columns: list[str], available: set[str]) -> tuple[list[str], list[str]]:
    columns, exprs = [], []
    for column in core_columns:
        if column in spec.renames:
            expr = spec.renames[column]
        elif column == "is_tombstoned":
            expr = "is_tombstoned"
        elif column == "last_updated":
            expr = "last_updated_ts"
        elif column in available:
            expr = column
        else:
            continue
        columns.append(column)
        exprs.append(f"{expr} AS {column}")
    return columns, exprs


def _pending(con: duckdb.DuckDBPyConnection, spec: CoreTable, lo: int, hi: int) -> bool:
    """Whether (lo, hi] holds work for this table. A window usually holds rows of a few tables only: the
    others just move their watermark. A table with an after-insert hook always runs it (the hook may have
    work of its own: the access log's first chaining covers rows already there)."""
    return (spec.after_insert is not None or rows_pending(con, spec.staging_table, lo, hi)
            # a document's supporting entries are loaded even when its header was quarantined
            or (spec.table == "document" and rows_pending(con, "staging.document_resource", lo, hi)))


def upsert(con: duckdb.DuckDBPyConnection, spec: CoreTable) -> dict[str, int]:
    """Apply staged rows (raw_id beyond this table's watermark) to core; returns outcome counts."""
    lo = get_watermark(con, spec.consumer)
    hi = get_watermark(con, spec.upstream or f"staging.{spec.staging or spec.table}")
    counts = {"loaded": 0, "duplicate": 0, "tombstoned": 0}
    available = set(table_columns(con, spec.staging_table)) if hi > lo else set()
    with transaction(con):
        if available and _pending(con, spec, lo, hi):
            identity = ", ".join(spec.identity)
            version = "try_cast(s.last_updated AS TIMESTAMPTZ)" if "last_updated" in available else "NULL::TIMESTAMPTZ"
            # a multi-row identity's winning version is all its rows (they tie); a one-row identity's is one row
            rank, last_staged = ("row_number", ", s.rowid DESC") if spec.one_row_per_identity else ("dense_rank", "")
            window = f"s.raw_id > {int(lo)} AND s.raw_id <= {int(hi)}"  # ints: a view's body takes no parameters
            # `incoming` ranks the staged rows, by their identity, into what the upsert needs of them (staging row id,
            # raw id, version, tombstone, rank): the wide rows stay in staging and are read once, by the insert,
            # through `winner`, and so is the identity (the 16 × partitioned merge's checkup upsert held 229 MiB of
            # temporary tables with it, 139 MiB without; a copy of every staged column was its 4 × peak before
            # that: docs/capacity_history.md, thirteenth and fourteenth sessions).
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE incoming AS
                SELECT s.rowid AS staging_row, s.raw_id,
                       {version} AS last_updated_ts, coalesce(({spec.tombstone}), false) AS is_tombstoned,
                       {rank}() OVER (PARTITION BY {", ".join(f"s.{c}" for c in spec.identity)}
                                      ORDER BY {version} DESC NULLS LAST, s.raw_id DESC{last_staged}) AS version_rank
                FROM {spec.staging_table} s WHERE {window}
            """)
            if spec.policy == "latest":
                # the latest arrival replaces whatever core holds: no comparison with core
                con.execute("CREATE OR REPLACE TEMP VIEW winner_key AS SELECT * FROM incoming WHERE version_rank = 1")
            else:
                current = "last_updated" if spec.policy == "versioned" else "NULL::TIMESTAMPTZ AS last_updated"
                replaces = ("c.last_updated IS NULL OR w.last_updated_ts > c.last_updated"
                            if spec.policy == "versioned" else "false")  # immutable: a resend never replaces
                # only the current versions of staged identities: no DISTINCT over the whole core table
                con.execute(f"""
                    CREATE OR REPLACE TEMP TABLE winner_key AS
                    SELECT w.* FROM incoming w JOIN {spec.staging_table} s ON s.rowid = w.staging_row AND {window}
                    LEFT JOIN (SELECT DISTINCT {identity}, {current} FROM core.{spec.table}
                               WHERE ({identity}) IN (SELECT {identity} FROM {spec.staging_table} s WHERE {window})) c
                         USING ({identity})
                    WHERE w.version_rank = 1 AND (c.{spec.identity[0]} IS NULL OR {replaces})
                """)
            # the winning staged rows whole
            con.execute(f"""
                CREATE OR REPLACE TEMP VIEW winner AS
                SELECT s.*, k.last_updated_ts, k.is_tombstoned
                FROM {spec.staging_table} s JOIN winner_key k ON k.staging_row = s.rowid
                WHERE {window}
            """)
            columns, exprs = _select_list(spec, table_columns(con, f"core.{spec.table}"), available)
            # Replace the current version: delete then insert keeps multi-row identities (consent) whole.
            con.execute(f"DELETE FROM core.{spec.table} WHERE ({identity}) IN (SELECT DISTINCT {identity} FROM winner)")
            con.execute(f"INSERT INTO core.{spec.table} ({', '.join(columns)}) SELECT {', '.join(exprs)} FROM winner")
            counts |= _record_upsert_outcomes(con, f"core.{spec.table}", lo, hi)
            if spec.table == "document":
                _apply_document_children(con, lo, hi)
            if spec.after_insert is not None:
                spec.after_insert(con)
            # `incoming` holds a row per staged record, which a connection running more steps (the partitioned
            # merge) would keep; and `winner_key` is a view or a table by policy, which CREATE OR REPLACE cannot
            # swap. (A failed upsert's rollback takes them with it.)
            con.execute("DROP VIEW winner")
            con.execute(f"DROP {'VIEW' if spec.policy == 'latest' else 'TABLE'} winner_key")
            con.execute("DROP TABLE incoming")
        set_watermark(con, spec.consumer, hi)
    return counts


def duplicate_identities(con: duckdb.DuckDBPyConnection, spec: CoreTable, since: int = 0) -> int:
    """How many identities core.<table> holds more than one row of, among those of its rows from raw records
    after `since` (an earlier watermark: only identities an upsert wrote can have changed). 0 for a table whose
    grain is its identity, which the upsert keeps (core.sql has no key to enforce it); tables of multi-row
    identities count 0."""
    if not spec.one_row_per_identity:
        return 0
    identity = ", ".join(spec.identity)
    return con.execute(f"""
        SELECT count(*) FROM (
            SELECT 1 FROM core.{spec.table}
            WHERE ({identity}) IN (SELECT {identity} FROM core.{spec.table} WHERE raw_id > {int(since)})
            GROUP BY {identity} HAVING count(*) > 1)""").fetchone()[0]


def _record_upsert_outcomes(con: duckdb.DuckDBPyConnection, table: str, lo: int, hi: int) -> dict[str, int]:
    """Each incoming record's outcome: loaded or tombstoned where one of its staged rows won, else duplicate
    (recorded in one statement: one read of raw.resource's window, not one per outcome)."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE incoming_outcome AS
        SELECT i.raw_id, CASE WHEN bool_or(NOT k.is_tombstoned) THEN 'loaded'
                              WHEN bool_or(k.is_tombstoned) THEN 'tombstoned' ELSE 'duplicate' END AS outcome
        FROM incoming i LEFT JOIN winner_key k USING (staging_row) GROUP BY i.raw_id
    """)
    record_outcomes(con, "SELECT raw_id, outcome FROM incoming_outcome", None, table, (lo, hi))
    counted = dict(con.execute("SELECT outcome, count(*) FROM incoming_outcome GROUP BY outcome").fetchall())
    con.execute("DROP TABLE incoming_outcome")
    return {outcome: counted.get(outcome, 0) for outcome in ("loaded", "tombstoned", "duplicate")}


def _apply_document_children(con: duckdb.DuckDBPyConnection, lo: int, hi: int) -> None:
    """Sections of the winning document versions; supporting entries of every staged document."""
    con.execute("DELETE FROM core.document_section WHERE document_key IN (SELECT document_key FROM winner)")
    con.execute("""
        INSERT INTO core.document_section
        SELECT s.document_key, s.section_code, s.section_title, e.resource_type, e.raw_id
        FROM staging.document_section s JOIN winner w ON s.raw_id = w.raw_id
        LEFT JOIN raw.resource e ON e.bundle_key = s.bundle_key AND e.full_url = s.entry_reference
    """)
    con.execute(f"""
        INSERT INTO core.document_resource
        SELECT document_key, resource_type, profile, raw_id FROM staging.document_resource
        WHERE raw_id > {lo} AND raw_id <= {hi}
    """)
    record_outcomes(con, f"SELECT raw_id FROM staging.document_resource WHERE raw_id > {lo} AND raw_id <= {hi}",
                    "loaded", "core.document_resource", (lo, hi))


#: 紹介先 of a referral: the 医療機関番号 of the Organization its section 910 points to, in the same bundle
_RECIPIENT_INSTITUTION = f"""(
    SELECT list_filter(from_json(e.resource->'$.identifier', '[{{"system": "VARCHAR", "value": "VARCHAR"}}]'),
                       i -> i.system = '{INSTITUTION_NO}')[1].value
    FROM raw.resource e WHERE e.bundle_key = winner.bundle_key AND e.full_url = winner.recipient_reference
      AND e.resource_type = 'Organization' LIMIT 1)"""
CLINICAL_IDENTITY = ("institution_number", "resource_identifier", "identity_occurrence")
def _add_checkup_patients(con: duckdb.DuckDBPyConnection) -> None:
    """Examinees known only from 特定健診 XML (no FHIR Patient) still need their core.patient row."""
    con.execute("""
        INSERT INTO core.patient (patient_key, gender, birth_year, birth_month, raw_id)
        SELECT patient_key, any_value(sex), year(try_cast(any_value(birth_date) AS DATE)),
               month(try_cast(any_value(birth_date) AS DATE)), min(raw_id)
        FROM winner WHERE patient_key NOT IN (SELECT patient_key FROM core.patient)
        GROUP BY patient_key
    """)


_CLINICAL_TOMBSTONE = f"s.verification_status = {ENTERED_IN_ERROR}"
_PREFECTURES = (REFERENCE_DIR / "prefectures.csv").as_posix()

CORE_TABLES = [
    # Patients are staged with their bundle (the Patient entry decides whether the bundle is accepted).
    CoreTable("patient", ("patient_key",), upstream="staging.bundle@raw", renames={
        "birth_year": "year(try_cast(birth_date AS DATE))",
        "birth_month": "month(try_cast(birth_date AS DATE))",
        "prefecture_code": f"(SELECT prefecture_code FROM read_csv('{_PREFECTURES}', all_varchar = true) p "
                           "WHERE p.prefecture_name_ja = prefecture_name)",
    }),
    CoreTable("condition", CLINICAL_IDENTITY, _CLINICAL_TOMBSTONE),
    CoreTable("allergy", CLINICAL_IDENTITY, _CLINICAL_TOMBSTONE),
    CoreTable("lab_result", CLINICAL_IDENTITY, f"s.status = {ENTERED_IN_ERROR}",
              renames={"jlac10_code": "jlac10"}, staging="observation"),
    CoreTable("medication_request", CLINICAL_IDENTITY, f"s.status = {ENTERED_IN_ERROR}",
              renames={"order_category": "category_code"}),
    CoreTable("document", ("document_key",), f"s.status = {ENTERED_IN_ERROR}", renames={
        "entry_count": "(SELECT b.entry_count FROM raw.bundle b WHERE b.bundle_key = winner.bundle_key)",
        "recipient_institution": _RECIPIENT_INSTITUTION,
    }),
    CoreTable("facility", ("institution_number",), policy="latest", renames={
        "bed_band": BED_BAND_SQL,
        "applied_on": "try_cast(applied_on AS DATE)", "connected_on": "try_cast(connected_on AS DATE)",
        "first_submission_on": "try_cast(first_submission_on AS DATE)",
        "first_view_on": "try_cast(first_view_on AS DATE)",
    }),
    CoreTable("consent_event", ("consent_id",), staging="consent", policy="immutable", one_row_per_identity=False,
              renames={"event_time": "try_cast(event_time AS TIMESTAMPTZ)",
                       "period_start": "try_cast(period_start AS TIMESTAMPTZ)",
                       "period_end": "try_cast(period_end AS TIMESTAMPTZ)"}),
    # the same checkup in either form is one row; a re-sent report replaces the earlier one
    CoreTable("checkup_result", ("patient_key", "checkup_date", "program", "item_code"), policy="latest",
              after_insert=_add_checkup_patients),
    CoreTable("access_event", ("access_id",), policy="immutable", renames={
        "recorded": "try_cast(recorded AS TIMESTAMPTZ)",
        "kinds": "CASE WHEN kinds_text IS NULL OR kinds_text = '' THEN []::VARCHAR[] ELSE string_split(kinds_text, ',') END",
        "resource_refs": "coalesce(from_json(resource_refs_json, '[\"VARCHAR\"]'), []::VARCHAR[])",
    }, after_insert=chain_new_rows),
]
