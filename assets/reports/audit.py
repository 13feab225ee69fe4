"""reports/audit: the audit findings (reports.audit_finding) and the audit report files."""

import json
from contextlib import closing

import dagster as dg

from assets.metadata import table_metadata
from assets.ops import KEY as RUN_SUMMARY
from pipelines.audit.aggregates import refresh_aggregates
from pipelines.audit.findings import store_findings
from pipelines.reports.audit import write_audit_report
from pipelines.resources import KarteWarehouse


@dg.asset(key=["reports", "audit"], group_name="reports", kinds={"duckdb", "html"}, deps=[RUN_SUMMARY])
def audit(karte: KarteWarehouse) -> dg.MaterializeResult:
    """reports.audit_finding: one row per access × audit rule (whole log, as of its latest day), plus the analysts'
    audit.html / audit_summary.* (small cells suppressed) and the security officer's audit_cases.*."""
    with closing(karte.connect()) as con:
        refreshed = refresh_aggregates(con)  # so this and later reports read aggregates, not the whole log
        paths = write_audit_report(con, karte.settings().reports)  # computes TEMP audit_finding
        store_findings(con)
        by_rule = dict(con.execute("SELECT rule_id, count(*) FROM reports.audit_finding GROUP BY ALL ORDER BY 1"
                                   ).fetchall())
        meta = table_metadata(con, "reports.audit_finding")
    return dg.MaterializeResult(metadata={
        **meta,
        "findings_by_rule": dg.MetadataValue.json(by_rule),
        "files": dg.MetadataValue.json([str(p) for p in paths]),
        "html": dg.MetadataValue.path(str(paths[1])),
        "cases_html": dg.MetadataValue.path(str(next(p for p in paths if p.name == "audit_cases.html"))),
        "summary": dg.MetadataValue.text(json.dumps(by_rule)),
        "aggregates_refreshed": dg.MetadataValue.json(refreshed),
    })
