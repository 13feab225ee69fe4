"""core.consent_interval from core.consent_event, by the latest-event-wins rule (docs/consent.md).

For a patient, the Consent with the latest dateTime at or before t is in force (ties: the larger id).
Each Consent is a complete statement of what the patient shares: while it is in force it replaces every
earlier one. A permitting, active Consent therefore yields, for each kind × grantee it names, the interval
from max(dateTime, period.start) to min(next Consent's dateTime, period.end) — half-open, NULL = open.
A withdrawal (status inactive) or a deny yields nothing, so it closes every interval at its time.
Events are ordered by their own dateTime, never by arrival: late or out-of-order files re-derive the same
intervals. Only the patients with new events are re-derived.
"""

import duckdb

from pipelines.fhir.systems import INFORMATION_KINDS
from pipelines.ingest.pending import rows_pending
from pipelines.warehouse import get_watermark, set_watermark, transaction

CONSUMER = "core.consent_interval"
UPSTREAM = "core.consent_event"

_KINDS = ", ".join(f"('{k}')" for k in INFORMATION_KINDS)

INTERVALS_SQL = f"""
WITH event AS (
    SELECT DISTINCT consent_id, patient_key, event_time, status, provision_type, period_start, period_end
    FROM core.consent_event WHERE patient_key IN (SELECT patient_key FROM affected_patient)
), in_force AS (
    SELECT *, lead(event_time) OVER (PARTITION BY patient_key ORDER BY event_time, consent_id) AS superseded_at
    FROM event
), span AS (
    SELECT consent_id, patient_key,
           greatest(event_time, coalesce(period_start, event_time)) AS valid_from,
           CASE WHEN superseded_at IS NULL THEN period_end
                WHEN period_end IS NULL THEN superseded_at
                ELSE least(superseded_at, period_end) END AS valid_to
    FROM in_force
    -- an explicit permit is required: a Consent without provision.type shares nothing
    WHERE status = 'active' AND provision_type = 'permit'
)
SELECT s.patient_key, coalesce(e.kind, k.kind) AS kind, e.grantee, s.valid_from, s.valid_to, s.consent_id
FROM span s
JOIN core.consent_event e USING (consent_id)
LEFT JOIN (VALUES {_KINDS}) AS k(kind) ON e.kind IS NULL
WHERE s.valid_to IS NULL OR s.valid_from < s.valid_to
"""


def derive_consent_intervals(con: duckdb.DuckDBPyConnection) -> int:
    """Re-derive the intervals of every patient with consent events beyond the watermark; returns rows written."""
    lo, hi = get_watermark(con, CONSUMER), get_watermark(con, UPSTREAM)
    written = 0
    with transaction(con):
        # most increments bring no consent event: then only the watermark moves
        if hi > lo and rows_pending(con, UPSTREAM, lo, hi):
            con.execute(f"""CREATE OR REPLACE TEMP TABLE affected_patient AS
                            SELECT DISTINCT patient_key FROM core.consent_event WHERE raw_id > {lo} AND raw_id <= {hi}""")
            con.execute("DELETE FROM core.consent_interval WHERE patient_key IN (SELECT patient_key FROM affected_patient)")
            written = con.execute(f"INSERT INTO core.consent_interval {INTERVALS_SQL}").fetchone()[0]
        set_watermark(con, CONSUMER, hi)
    return written
