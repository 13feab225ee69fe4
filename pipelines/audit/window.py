"""Which accesses an audit covers, and as of when: dates are Japan days (JST), bounds are half-open instants.

as_of: what the warehouse may know — care relationships count only records sent before the end of that day.
[date_from, date_to]: the accesses audited (and the peers the statistical rules compare them with).
Defaults: as_of = the JST day of the latest access recorded; the window = everything up to as_of.
"""

from dataclasses import dataclass
from datetime import date, timedelta

import duckdb

from pipelines.reports.jst import jst_midnight_sql


class AuditWindowError(ValueError):
    """Dates that do not make a window (one-line message for the CLI)."""


@dataclass(frozen=True)
class AuditWindow:
    as_of: date
    date_from: date | None = None  # None: from the first access
    date_to: date | None = None  # None: up to as_of

    def __post_init__(self):
        if self.date_to is not None and self.date_to > self.as_of:
            raise AuditWindowError(f"--to {self.date_to} is after --as-of {self.as_of}")
        if self.date_from is not None and self.date_from > (self.date_to or self.as_of):
            raise AuditWindowError(f"--from {self.date_from} is after the end of the window {self.date_to or self.as_of}")

    @property
    def as_of_end_sql(self) -> str:
        """The first instant after as_of (SQL literal)."""
        return jst_midnight_sql(self.as_of + timedelta(days=1))

    @property
    def start_sql(self) -> str:
        return jst_midnight_sql(self.date_from) if self.date_from else "'-infinity'::TIMESTAMPTZ"

    @property
    def end_sql(self) -> str:
        return jst_midnight_sql((self.date_to or self.as_of) + timedelta(days=1))

    def label(self) -> str:
        first = self.date_from.isoformat() if self.date_from else "first access"
        return f"{first} – {(self.date_to or self.as_of).isoformat()} (as of {self.as_of.isoformat()}, JST)"


def resolve_window(con: duckdb.DuckDBPyConnection, as_of: date | None = None, date_from: date | None = None,
                   date_to: date | None = None) -> AuditWindow:
    """Fill the defaults from the warehouse (as_of = the JST day of the latest access; today when there is none)."""
    if as_of is None:
        # the latest instant's Japan day (the zone conversion once, not per row)
        latest = con.execute("SELECT CAST(timezone('Asia/Tokyo', max(recorded)) AS DATE) FROM core.access_event"
                             ).fetchone()[0]
        as_of = latest or date.today()
        if date_to is not None and date_to > as_of:
            as_of = date_to
    return AuditWindow(as_of, date_from, date_to)
