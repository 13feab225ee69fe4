"""The one definition of "covered by consent", as an SQL predicate every read path and audit rule shares."""


def covering_interval_sql(ci: str, viewer: str, at: str) -> str:
    """The part of "covered" beyond the interval's patient and kind: interval `ci` (an alias of
    core.consent_interval) admits that viewer at that instant. For joins on (patient_key, kind) — at national
    scale a join beats the correlated EXISTS below (whose OR conditions cannot be hash-join keys)."""
    return (f"({ci}.grantee IS NULL OR {ci}.grantee = {viewer}) "
            f"AND {ci}.valid_from <= {at} AND ({ci}.valid_to IS NULL OR {at} < {ci}.valid_to)")


def covering_consent_sql(patient_key: str, kind: str, viewer: str, at: str) -> str:
    """`EXISTS (...)`: some consent interval of that patient covers that kind, that viewer and that instant.

    Arguments are SQL expressions (column names or literals). Intervals are half-open; a NULL grantee
    means every facility.
    """
    return f"""EXISTS (
        SELECT 1 FROM core.consent_interval ci
        WHERE ci.patient_key = {patient_key} AND ci.kind = {kind}
          AND {covering_interval_sql("ci", viewer, at)})"""
