"""Schema `shared`: the only sanctioned way to read clinical rows, as DuckDB table macros.

    shared.visible_<table>(viewer, as_of [, purpose := 'TREAT'])   what facility `viewer` may see at `as_of`
    shared.patient_<table>(patient_key)                             what the patient sees (マイナポータル)

A row is visible to a facility when it is not a tombstone, not UNDELIVERED (未提供: never shared), and a
consent interval of its patient covers its kind, that facility and that instant. Emergency access
(purpose 'ETREAT') needs no consent — it is allowed, and the audit lists every such access for review.
The patient sees their own rows except UNDELIVERED and UNINFORMED (未告知) ones.
"""

import duckdb

from pipelines.consent.coverage import covering_consent_sql

#: core tables holding clinical rows (each has patient_key, category, is_tombstoned)
CLINICAL_TABLES = ("condition", "allergy", "lab_result", "medication_request", "document", "checkup_result")
#: tables whose rows carry the IG flags (documents are headers; their entries carry the flags)
FLAGGED_TABLES = ("condition", "allergy", "lab_result", "medication_request")


def _not_flagged(table: str, flag: str) -> str:
    return f"AND NOT r.{flag}" if table in FLAGGED_TABLES else ""


def read_path_sql(tables: tuple[str, ...] = CLINICAL_TABLES) -> str:
    statements = []
    for table in tables:
        consent = covering_consent_sql("r.patient_key", "r.category", "viewer", "as_of")
        statements.append(f"""
CREATE OR REPLACE MACRO shared.visible_{table}(viewer, as_of, purpose := 'TREAT') AS TABLE
SELECT r.* FROM core.{table} r
WHERE NOT r.is_tombstoned {_not_flagged(table, "flag_undelivered")}
  AND (purpose = 'ETREAT' OR {consent});

CREATE OR REPLACE MACRO shared.patient_{table}(patient) AS TABLE
SELECT r.* FROM core.{table} r
WHERE r.patient_key = patient AND NOT r.is_tombstoned
  {_not_flagged(table, "flag_undelivered")} {_not_flagged(table, "flag_uninformed")};
""")
    return "\n".join(statements)


def create_read_path(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(read_path_sql())
