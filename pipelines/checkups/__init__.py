"""Checkup results in both forms Karte takes, mapped to one row shape (pure functions; no warehouse writes).

    archive.read_archive(path) -> ArchiveRead             特定健診 ZIP → (member, CDA text) or an archive-level error
    cda.parse_checkup_document(xml_text) -> [row dict]      one person's CDA → rows; CheckupFormatError(rule_id, msg)
    fhir.checkup_rows(frame, header) -> DataFrame           checkup_observation view rows (+ header) → rows
    plausibility.apply_plausibility(rows) -> (passing, failures)   K-CHECKUP-ITEM / -RANGE / -BMI / -BP

The row shape (one row per person × checkup × item) is rows.ROW_SCHEMA; items.py holds the 322 特定健診 item
codes with Karte's units and input limits (data/reference/checkup_items.csv); codes.py the formats' OIDs.
"""

from pipelines.checkups.rows import CHECKUP_KEY, ROW_COLUMNS, ROW_SCHEMA

__all__ = ["CHECKUP_KEY", "ROW_COLUMNS", "ROW_SCHEMA"]
