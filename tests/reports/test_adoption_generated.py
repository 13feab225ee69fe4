"""On generated data: every adoption measure equals the value computed here, independently of the warehouse, from
what the generator wrote — the registry CSV, the FHIR files and access logs, and the faults its manifest lists."""

import calendar
import csv
import gzip
import json
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest

from pipelines.fhir import jlac10
from pipelines.fhir import systems as S
from pipelines.reports.adoption import build_adoption_report
from pipelines.warehouse import connect

AS_OF = date(2026, 10, 31)
SIX = ("condition", "infection", "drug-contraindication", "allergy", "lab-result", "prescription")
THREE = ("referral", "discharge-summary", "checkup")
DOCUMENT_TYPES = {"57133-1": "referral", "18842-5": "discharge-summary"}


@pytest.fixture(scope="module")
def sample(adoption_sample):
    inbox, warehouse = adoption_sample
    con = connect(warehouse, read_only=True)
    yield inbox, con
    con.close()


@pytest.fixture(scope="module")
def report(sample):
    return build_adoption_report(sample[1], as_of=AS_OF)


@pytest.fixture(scope="module")
def truth(sample):
    return Truth(sample[0])


# --- the generator's truth -------------------------------------------------------------------------------------

def _day(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


def _segment(row: dict) -> str:
    if row["facility_type"] != "hospital":
        return row["facility_type"]
    beds = int(row["bed_count"])
    return "hospital_under200" if beds < 200 else "hospital_200_399" if beds < 400 else "hospital_400plus"


def _category(resource: dict, bundle: dict) -> str | None:
    kind = resource["resourceType"]
    if kind == "Composition":
        return DOCUMENT_TYPES.get(resource["type"]["coding"][0]["code"])
    if kind == "Condition":
        return "condition"
    if kind == "MedicationRequest":
        return "prescription"
    if kind == "AllergyIntolerance":
        return "drug-contraindication" if (resource.get("category") or [None])[0] == "medication" else "allergy"
    if kind == "Observation":
        codings = resource["code"]["coding"]
        infection = any(c["system"] == S.INFECTION_LABO_CS or c["code"] in jlac10.INFECTION_LABO for c in codings)
        return "infection" if infection else "lab-result"
    return None


def _resource_id(resource: dict) -> str | None:
    return next((i["value"] for i in resource.get("identifier", []) if isinstance(i, dict)
                 and i.get("system") == S.RESOURCE_INSTANCE_ID), None)


class Truth:
    """Per facility: onboarding dates, days with an accepted bundle, view days, first day per kind, records/day."""

    def __init__(self, inbox: Path):
        with open(inbox / "facilities" / "facility_registry.csv", encoding="utf-8", newline="") as fh:
            self.registry = {r["institution_number"]: r for r in csv.DictReader(fh)}
        faults = json.loads((inbox / "_manifest.json").read_text(encoding="utf-8"))["faults"]
        copies = {f["file"] for f in faults if f["fault"] == "resubmitted_file"}
        unreadable = {(f["file"], f["line"]) for f in faults if f["expected_outcome"] == "quarantine_file"}
        rejected_bundles = {(f["file"], f["line"]) for f in faults if f["expected_outcome"] == "quarantine_bundle"}
        rejected_resources = {(f["file"], f["line"], f["resource_identifier"]) for f in faults
                              if f["expected_outcome"] == "quarantine_resource"}
        self.submission_days: dict[str, set[date]] = defaultdict(set)
        self.first_sent: dict[tuple[str, str], date] = {}
        self.records: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])  # received, passed
        for path in sorted((inbox / "fhir").iterdir()):
            rel = f"fhir/{path.name}"
            if rel in copies:  # byte-identical resend: skipped at landing, never received
                continue
            inst, stamp = path.name.split("_")[:2]
            day = date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8]))
            data = path.read_bytes()
            data = gzip.decompress(data) if path.name.endswith(".gz") else data
            units = ([(i, line) for i, line in enumerate(data.split(b"\n"), start=1) if line.strip()]
                     if ".ndjson" in path.name else [(None, data)])
            for line, text in units:
                counts = self.records[(inst, day)]
                if (rel, None) in unreadable or (rel, line) in unreadable:
                    counts[0] += 1  # one unreadable unit: one record, rejected
                    continue
                bundle = json.loads(text)
                counts[0] += len(bundle["entry"])
                if (rel, line) in rejected_bundles:
                    continue
                self.submission_days[inst].add(day)
                for entry in bundle["entry"]:
                    resource = entry["resource"]
                    if (rel, line, _resource_id(resource)) in rejected_resources:
                        continue
                    counts[1] += 1
                    kind = _category(resource, bundle)
                    if kind and day < self.first_sent.get((inst, kind), date.max):
                        self.first_sent[(inst, kind)] = day
        self.view_days: dict[str, set[date]] = defaultdict(set)
        for path in sorted((inbox / "access").glob("*.ndjson")):
            for line in path.read_text(encoding="utf-8").splitlines():
                event = json.loads(line)
                if event.get("outcome", "0") != "0":
                    continue
                assert event["recorded"].endswith("+09:00")
                viewer = next(a["who"]["identifier"]["value"] for a in event["agent"]
                              if a.get("requestor") and a["who"].get("identifier", {}).get("system")
                              == S.INSTITUTION_NO)
                self.view_days[viewer].add(date.fromisoformat(event["recorded"][:10]))

    def months(self, as_of: date) -> list[tuple[str, date, date]]:
        days = [d for r in self.registry.values() for d in (_day(r["applied_on"]), _day(r["connected_on"])) if d]
        days += [d for s in (*self.submission_days.values(), *self.view_days.values()) for d in s]
        first = min(days)
        months, cursor = [], first.replace(day=1)
        while cursor <= as_of:
            end = cursor.replace(day=calendar.monthrange(cursor.year, cursor.month)[1])
            months.append((f"{cursor:%Y-%m}", cursor, min(end, as_of)))
            cursor = end + timedelta(days=1)
        return months

    def facility_flags(self, inst: str, start: date, snapshot: date) -> dict:
        row = self.registry[inst]
        connected = (_day(row["connected_on"]) or date.max) <= snapshot
        window = [snapshot - timedelta(days=k) for k in range(30)]
        sent = {k for (i, k), d in self.first_sent.items() if i == inst and d <= snapshot} if connected else set()
        received = sum(c[0] for (i, d), c in self.records.items() if i == inst and start <= d <= snapshot)
        passed = sum(c[1] for (i, d), c in self.records.items() if i == inst and start <= d <= snapshot)
        return {
            "registered": 1, "applied": int((_day(row["applied_on"]) or date.max) <= snapshot),
            "connected": int(connected),
            "sharing": int(connected and any(d in self.submission_days[inst] for d in window)),
            "viewing": int(connected and any(d in self.view_days[inst] for d in window)),
            "kinds_sent": len(sent & set(SIX)), "documents_sent": len(sent & set(THREE)),
            "records_received": received, "records_passed": passed,
            **{f"sent:{k}": int(k in sent) for k in (*SIX, *THREE)},
        }

    def measures(self, as_of: date) -> dict[tuple, tuple[int, int]]:
        """(month, prefecture, segment, measure) → (numerator, denominator), national (00) and rolled-up segments."""
        cells: dict[tuple, dict] = {}
        for month, start, snapshot in self.months(as_of):
            for inst, row in self.registry.items():
                flags = self.facility_flags(inst, start, snapshot)
                segment = _segment(row)
                segments = [segment, "all"] + (["hospital"] if segment.startswith("hospital") else [])
                for prefecture in (row["prefecture_code"], "00"):
                    for seg in segments:
                        cell = cells.setdefault((month, prefecture, seg), defaultdict(int))
                        for k, v in flags.items():
                            cell[k] += v
        ratios = {"applied": ("applied", "registered", 1), "connected": ("connected", "registered", 1),
                  "sharing": ("sharing", "connected", 1), "viewing": ("viewing", "connected", 1),
                  "kind_coverage": ("kinds_sent", "connected", 6), "document_coverage": ("documents_sent", "connected", 3),
                  "quality": ("records_passed", "records_received", 1),
                  **{f"sent:{k}": (f"sent:{k}", "connected", 1) for k in (*SIX, *THREE)}}
        return {(*key, measure): (cell[num], cell[den] * factor)
                for key, cell in cells.items() for measure, (num, den, factor) in ratios.items()}


# --- the comparisons -------------------------------------------------------------------------------------------

def test_every_monthly_measure_equals_the_generator_truth(report, truth):
    expected = truth.measures(AS_OF)
    monthly = report.tables["adoption_monthly"]
    got = {(r["month"], r["prefecture_code"], r["segment"], r["measure"]): (r["numerator"], r["denominator"])
           for r in monthly.iter_rows(named=True)}
    assert got.keys() == expected.keys()
    wrong = {k: (got[k], expected[k]) for k in expected if got[k] != expected[k]}
    assert not wrong, list(wrong.items())[:10]
    # the sample exercises every measure (rejections included), so the comparison is not vacuous
    last = {k[3]: v for k, v in got.items() if k[0] == "2026-10" and k[1:3] == ("00", "all")}
    assert last["connected"][0] > 0 and last["sharing"][0] > 0 and last["viewing"][0] > 0
    assert any(v[0] < v[1] for k, v in got.items() if k[3] == "quality" and k[1:3] == ("00", "all"))
    assert any(v[0] > 0 for k, v in got.items() if k[3].startswith("sent:") and k[1:3] == ("00", "all"))


def test_rates_carry_numerator_denominator_and_basis(report):
    monthly = report.tables["adoption_monthly"]
    assert monthly["denominator_basis"].null_count() == 0
    for row in monthly.filter(monthly["denominator"] > 0).head(2000).iter_rows(named=True):
        assert row["rate_pct"] == pytest.approx(row["numerator"] * 100 / row["denominator"])


def test_facility_table_equals_the_generator_truth(report, truth):
    facility = {r["institution_number"]: r for r in report.tables["adoption_facility"].iter_rows(named=True)}
    assert facility.keys() == truth.registry.keys()
    for inst, row in facility.items():
        flags = truth.facility_flags(inst, date(1900, 1, 1), AS_OF)
        sent = sorted(k for k in (*SIX, *THREE) if flags[f"sent:{k}"])
        assert (row["is_sharing"], row["is_viewing"]) == (bool(flags["sharing"]), bool(flags["viewing"])), inst
        assert row["kinds_sent_count"] == flags["kinds_sent"] and row["documents_sent_count"] == flags["documents_sent"]
        assert sorted(filter(None, f"{row['kinds_sent']},{row['documents_sent']}".split(","))) == sent
        assert (row["records_received"], row["records_passed"]) == (flags["records_received"], flags["records_passed"])
        days = sorted(truth.submission_days[inst])
        assert row["first_submission_on"] == (days[0] if days else None)
        assert row["segment"] == _segment(truth.registry[inst])


def test_trajectory_counts_match_the_registry(report, truth):
    national = report.tables["adoption_trajectory"].filter(segment="all").row(0, named=True)
    connected = sum((_day(r["connected_on"]) or date.max) <= AS_OF for r in truth.registry.values())
    assert (national["registered"], national["connected"]) == (len(truth.registry), connected)
    gap = report.tables["adoption_prefecture_gap"]
    assert gap.height == 47 and gap["prefecture_code"].n_unique() == 47
    ranked = gap.filter(gap["rank_by_gap"].is_not_null())
    assert ranked["gap_pp"].to_list() == sorted(ranked["gap_pp"].to_list(), reverse=True)


def test_default_as_of_is_the_latest_data_day(sample, truth):
    latest = build_adoption_report(sample[1])
    days = [d for s in (*truth.submission_days.values(), *truth.view_days.values()) for d in s]
    days += [d for r in truth.registry.values() for d in (_day(r["applied_on"]), _day(r["connected_on"])) if d]
    assert latest.as_of == max(days)
    assert latest.inputs["as_of_basis"] == "latest data day in the warehouse"


def test_records_of_a_file_no_run_finished_count_as_received_not_passed(warehouse_copy):
    """A run killed mid-way leaves a file whose records have no outcome yet (its reported_batch_id unset): they
    were received, and have not passed."""
    from pipelines.reports.adoption.stored import build_facts

    with connect(warehouse_copy) as con:
        file_id, sender, records = con.execute(
            """SELECT r.file_id, m.sender, count(*) FROM raw.resource r JOIN ops.file_manifest m USING (file_id)
               WHERE m.kind = 'fhir' AND m.sender IS NOT NULL GROUP BY ALL ORDER BY 3 DESC, 1 LIMIT 1""").fetchone()
        build_facts(con)
        before = con.execute("SELECT sum(received), sum(passed) FROM adoption_records_day WHERE institution_number = ?",
                             [sender]).fetchone()
        lost = con.execute(f"""SELECT count(*) FILTER (WHERE outcome IN ('loaded', 'duplicate', 'tombstoned'))
                               FROM ops.record_outcome WHERE raw_id IN (SELECT raw_id FROM raw.resource
                                                                       WHERE file_id = {file_id})""").fetchone()[0]
        con.execute(f"DELETE FROM ops.record_outcome WHERE raw_id IN (SELECT raw_id FROM raw.resource "
                    f"WHERE file_id = {file_id})")
        con.execute(f"UPDATE ops.file_manifest SET reported_batch_id = NULL WHERE file_id = {file_id}")
        build_facts(con)
        after = con.execute("SELECT sum(received), sum(passed) FROM adoption_records_day WHERE institution_number = ?",
                            [sender]).fetchone()
    assert records > 0 and lost > 0
    assert after == (before[0], before[1] - lost)
