"""Staff roles (code system urn:karte:staff-role) and which of them may view clinical data: the shipped
reference list data/reference/staff_roles.csv (role, name_ja, name_en, may_view_clinical, note)."""

import duckdb

from pipelines.config import REFERENCE_DIR

STAFF_ROLES_CSV = REFERENCE_DIR / "staff_roles.csv"


def load_staff_roles(con: duckdb.DuckDBPyConnection) -> None:
    """TEMP TABLE audit_staff_role(role, name_ja, name_en, may_view_clinical) from the reference list."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE audit_staff_role AS
        SELECT role, name_ja, name_en, CAST(may_view_clinical AS BOOLEAN) AS may_view_clinical
        FROM read_csv('{STAFF_ROLES_CSV.as_posix()}', header = true, all_varchar = true)""")
