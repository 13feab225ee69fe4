"""Reports at national scale (issue 7): a synthetic national warehouse, built inside DuckDB, and the adoption and
audit reports timed over it end to end (target: each ≤ 10 s on the 2-core, 24 GiB machine).

The warehouse (build_scale_warehouse) is made with SQL only — range() rows and hash-based deterministic
pseudo-randomness (`u(key, salt)` below: the same sizes and seed give the same warehouse on the same DuckDB
version), never the file generator, which would need hours for this size. It holds what the two reports read:

    core.facility        ~180,000 facilities: the 医療施設調査 mix of hospitals / clinics / dental clinics
                         (national 2024 counts) over the prefectures (動態調査 2021 shares; dental clinics
                         follow clinics), hospitals in the survey's bed bands, onboarding (applied, connected)
                         on logistic curves spread over the 60 months START … END, hospitals first
    submissions          per connected facility and month, with a probability by facility type, one file
                         <医療機関番号>_<YYYYMMDD>_001.json with one bundle (Patient + one record of one of the
                         9 kinds): ops.file_manifest, raw.bundle, raw.resource, staging.bundle, the staging
                         category tables, ops.record_outcome; 2 % of records and 0.3 % of bundles quarantined
    core.access_event    10,000,000 views, hash-chained as ingest chains them (pipelines/audit/chain.py), mostly
                         by a patient's own facilities (large hospitals see more patients), one kind of
                         information each (1 % name none), with planted suspicious ones — ~2 % in all: clerk
                         roles (0.1 %), emergency access (0.5 %, and 30 % at a few hospitals that use it far too
                         often), strangers with no care relationship (0.3 %), snooping staff-days (40 distinct
                         patients each), Conditions flagged UNDELIVERED named in the log
    consent              one Consent per patient just before their first view (0.3 % never consent, 1 % share 6
                         of the 9 kinds, 3 % name only their own facilities, 1 % withdraw half-way):
                         core.consent_event and core.consent_interval (derived by pipelines/consent/intervals.py)
    care records         core.condition (every patient × facility pair; 1 % flagged UNDELIVERED) and
                         core.lab_result (half of the pairs): the audit's care relationships. They carry no raw
                         provenance (file_id 0): the reports never read it.
    bench.planted        access_id × audit rule the generator planted (what the audit must find; tests compare)
    audit state          the chain checkpoint and the audit's aggregates as the nightly run leaves them, the last
                         day's accesses after them (audit_state below): the report verifies and counts that day

Raw JSON is a one-field placeholder: the reports read no resource body, only the envelope's timestamp.

run_scale_bench builds it in a temporary folder and runs `karte report adoption` and `karte report audit` — the
CLI's own main(), reading the warehouse read-only and writing every output file — in a fresh process per run,
`repeat` runs each, alternating; it reports the best and the median seconds (timed inside the child, from the
command's start to its last file written: interpreter start-up is not counted), the child's peak RSS and rows.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb

from pipelines.audit.aggregates import refresh_aggregates
from pipelines.audit.chain import chain_new_rows, verify_chain
from pipelines.bench import NATIONAL_ACCESS_EVENTS, NATIONAL_FACILITIES, child_figures
from pipelines.config import REFERENCE_DIR
from pipelines.consent.intervals import INTERVALS_SQL
from pipelines.fhir.systems import INFORMATION_KINDS
from pipelines.ingest.facility_registry import BED_BAND_SQL
from pipelines.reports.adoption.stored import refresh_facts
from pipelines.reports.jst import jst_midnight_sql
from pipelines.warehouse import connect, raw_lake

TARGET_SECONDS = 10.0
START, END = date(2025, 4, 1), date(2030, 3, 31)  # 60 months
MONTHS = 60
#: views per patient over the 60 months (patients = access events / this)
VIEWS_PER_PATIENT = 20
#: a snooping staff member views this many distinct patients in one day (A-VOLUME needs ≥ 30)
SNOOP_PATIENTS = 40
#: the audit report finds the last this many JST days not yet verified nor in the stored aggregates (what arrived
#: since the nightly run's check and refresh)
AUDIT_BACKLOG_DAYS = 1

_KINDS = tuple(INFORMATION_KINDS)
#: kind of information → share of submissions / of views (cumulative thresholds are derived below)
_SUBMITTED = {"condition": .25, "lab-result": .30, "prescription": .15, "allergy": .06, "drug-contraindication": .04,
              "infection": .05, "referral": .07, "discharge-summary": .04, "checkup": .04}
_VIEWED = {"condition": .22, "lab-result": .25, "prescription": .18, "allergy": .07, "drug-contraindication": .06,
           "infection": .05, "referral": .07, "discharge-summary": .05, "checkup": .05}
#: staging table of each kind (the adoption report finds category tables by their columns)
_STAGING = {"condition": ("condition",), "observation": ("lab-result", "infection"),
            "allergy": ("allergy", "drug-contraindication"), "medication_request": ("prescription",),
            "document": ("referral", "discharge-summary"), "checkup_result": ("checkup",)}
_RESOURCE_TYPE = {"condition": "Condition", "lab-result": "Observation", "infection": "Observation",
                  "allergy": "AllergyIntolerance", "drug-contraindication": "AllergyIntolerance",
                  "prescription": "MedicationRequest", "referral": "Composition", "discharge-summary": "Composition",
                  "checkup": "Observation"}


def _pick(shares: dict[str, float], v: str) -> str:
    """SQL CASE choosing a key of `shares` by the uniform number `v` (shares sum to 1)."""
    arms, total = [], 0.0
    for key, share in list(shares.items())[:-1]:
        total += share
        arms.append(f"WHEN {v} < {total:.6f} THEN '{key}'")
    return f"CASE {' '.join(arms)} ELSE '{list(shares)[-1]}' END"


def _uuid(text_sql: str) -> str:
    """A deterministic UUID-shaped id from the md5 of an SQL text expression."""
    h = f"md5({text_sql})"
    return (f"substr({h}, 1, 8) || '-' || substr({h}, 9, 4) || '-' || substr({h}, 13, 4) || '-' || "
            f"substr({h}, 17, 4) || '-' || substr({h}, 21, 12)")


@dataclass(frozen=True)
class ScaleSpec:
    facilities: int = NATIONAL_FACILITIES
    access_events: int = NATIONAL_ACCESS_EVENTS
    seed: int = 0

    @property
    def patients(self) -> int:
        return max(100, self.access_events // VIEWS_PER_PATIENT)

    @property
    def snoop_days(self) -> int:
        return max(2, self.access_events // 400_000)


def _macros(con: duckdb.DuckDBPyConnection, spec: ScaleSpec) -> None:
    # 53 bits of hash(key, salt, seed) → a uniform number in [0, 1)
    con.execute(f"CREATE OR REPLACE TEMP MACRO u(k, salt) AS "
                f"(hash(k, salt, {int(spec.seed)}) >> 11)::DOUBLE / 9007199254740992.0")
    con.execute("CREATE OR REPLACE TEMP MACRO jst(d, seconds) AS "  # JST day + seconds after midnight → instant
                "(d::TIMESTAMP - INTERVAL 9 HOUR + to_microseconds(CAST(seconds * 1e6 AS BIGINT)))::TIMESTAMPTZ")


def _facilities(con: duckdb.DuckDBPyConnection, spec: ScaleSpec) -> None:
    prefectures = (REFERENCE_DIR / "facility_counts_by_prefecture.csv").as_posix()
    national = (REFERENCE_DIR / "facility_counts_national.csv").as_posix()
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE scale_mix AS
        WITH pref AS (
            SELECT prefecture_code, hospitals::DOUBLE AS h, clinics::DOUBLE AS c
            FROM read_csv('{prefectures}', all_varchar = true)
            WHERE prefecture_code <> '00' AND hospitals IS NOT NULL AND clinics IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY prefecture_code ORDER BY as_of DESC) = 1
        ), nat AS (
            SELECT facility_type, facilities::DOUBLE AS n FROM read_csv('{national}', all_varchar = true)
            WHERE facility_type IN ('hospital', 'clinic', 'dental')
            QUALIFY row_number() OVER (PARTITION BY facility_type ORDER BY as_of DESC) = 1
        ), cell AS (   -- dental clinics are not published per prefecture: they follow the clinics
            SELECT p.prefecture_code, n.facility_type,
                   n.n * CASE n.facility_type WHEN 'hospital' THEN p.h / sum(p.h) OVER (PARTITION BY n.facility_type)
                         ELSE p.c / sum(p.c) OVER (PARTITION BY n.facility_type) END AS weight
            FROM pref p CROSS JOIN nat n
        )
        SELECT prefecture_code, facility_type,
               (sum(weight) OVER (ORDER BY facility_type, prefecture_code) - weight) / sum(weight) OVER () AS cum_from
        FROM cell""")
    days = (END - START).days + 1
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE scale_facility AS
        WITH f AS (
            SELECT i, m.prefecture_code, m.facility_type
            FROM range({spec.facilities}) t(i) ASOF JOIN scale_mix m ON (i + 0.5) / {spec.facilities} >= m.cum_from
        ), onboarding AS (   -- logistic adoption over the months: hospitals first, dental clinics last
            SELECT *, CASE facility_type WHEN 'hospital' THEN 30 WHEN 'clinic' THEN 44 ELSE 52 END
                      + 9 * ln(v / (1 - v)) AS connect_month,
                   CASE WHEN facility_type <> 'hospital' THEN NULL
                        WHEN u(i, 'band') < 0.69 THEN 20 + floor(u(i, 'beds') * 180)
                        WHEN u(i, 'band') < 0.90 THEN 200 + floor(u(i, 'beds') * 200)
                        ELSE 400 + floor(u(i, 'beds') * 800) END::INTEGER AS bed_count
            FROM (SELECT *, 0.000001 + 0.999998 * u(i, 'connect') AS v FROM f)
        ), dated AS (
            SELECT *, CASE WHEN connect_month < 0 THEN floor(u(i, 'early') * 90)
                           ELSE floor(connect_month * 30.436875) END::INTEGER AS connect_day
            FROM onboarding
        )
        SELECT i, prefecture_code || CASE facility_type WHEN 'dental' THEN '3' ELSE '1' END
                  || lpad(i::VARCHAR, 7, '0') AS institution_number,
               prefecture_code, facility_type, CASE facility_type WHEN 'dental' THEN '3' ELSE '1' END AS score_table,
               bed_count,
               CASE WHEN connect_day < {days} THEN DATE '{START}' + connect_day END AS connected_on,
               CASE WHEN connect_day < {days} THEN DATE '{START}' + greatest(connect_day - 20
                                                                           - floor(u(i, 'apply') * 100)::INTEGER, 0)
                    WHEN u(i, 'apply') < 0.4 THEN DATE '{START}' + floor(u(i, 'apply_day') * {days})::INTEGER
                    END AS applied_on,
               -- who sees how many patients: large hospitals most
               CASE facility_type WHEN 'hospital' THEN bed_count / 10.0 WHEN 'clinic' THEN 1.0 ELSE 0.5 END AS weight,
               CASE facility_type WHEN 'hospital' THEN greatest(10, bed_count // 8) WHEN 'clinic' THEN 4 ELSE 3 END
                   AS staff,
               facility_type = 'hospital' AND u(i, 'elevated') < 0.003 AS emergency_heavy
        FROM dated""")
    con.execute(f"""
        INSERT INTO core.facility BY NAME
        SELECT institution_number, prefecture_code, score_table, facility_type, bed_count,
               CASE facility_type WHEN 'hospital' THEN '病院' WHEN 'clinic' THEN 'クリニック' ELSE '歯科医院' END
                   || ' ' || lpad(i::VARCHAR, 6, '0') AS facility_name,
               {BED_BAND_SQL} AS bed_band, applied_on, connected_on,
               CASE WHEN u(i, 'first_sub') < 0.9 THEN least(connected_on + 1 + floor(u(i, 'sub_day') * 30)::INTEGER,
                                                           DATE '{END}') END AS first_submission_on,
               CASE WHEN u(i, 'first_view') < 0.9 THEN least(connected_on + 1 + floor(u(i, 'view_day') * 30)::INTEGER,
                                                            DATE '{END}') END AS first_view_on,
               i + 1 AS raw_id
        FROM scale_facility""")
    # who can see patients: the facilities connected by the end, with cumulative weights for a weighted pick
    con.execute("""
        CREATE OR REPLACE TEMP TABLE scale_connected AS
        SELECT i AS facility, institution_number, facility_type, connected_on, staff, emergency_heavy,
               (sum(weight) OVER (ORDER BY i) - weight) / sum(weight) OVER () AS cum_from
        FROM scale_facility WHERE connected_on IS NOT NULL""")


def _files(con: duckdb.DuckDBPyConnection, spec: ScaleSpec) -> None:
    """ops.batch, the registry / access / consent files, and the submissions (files, bundles, records)."""
    con.execute(f"INSERT INTO ops.batch (batch_id, started_at, finished_at, inbox) "
                f"VALUES (1, TIMESTAMP '{END} 23:30:00', TIMESTAMP '{END} 23:59:00', 'bench: national scale')")
    landed = f"TIMESTAMP '{END} 23:30:00'"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE scale_log_file AS
        SELECT 1 AS file_id, 'facilities/facility_registry.csv' AS path, 'facilities' AS kind, NULL AS month_start
        UNION ALL
        SELECT 2 + k, 'access/audit_' || strftime(DATE '{START}' + INTERVAL (k) MONTH, '%Y%m') || '.ndjson', 'access',
               (DATE '{START}' + INTERVAL (k) MONTH)::DATE FROM range({MONTHS}) t(k)
        UNION ALL
        SELECT 2 + {MONTHS} + k, 'consent/consent_' || strftime(DATE '{START}' + INTERVAL (k) MONTH, '%Y%m')
               || '.ndjson', 'consent', (DATE '{START}' + INTERVAL (k) MONTH)::DATE FROM range({MONTHS}) t(k)""")
    first_fhir_file = 2 + 2 * MONTHS
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE scale_bundle AS
        WITH sends AS (
            SELECT f.i, f.institution_number, f.facility_type, f.connected_on, m.k,
                   (DATE '{START}' + INTERVAL (m.k) MONTH)::DATE AS month_start
            FROM scale_facility f JOIN range({MONTHS}) m(k)
              ON DATE '{START}' + INTERVAL (m.k) MONTH >= date_trunc('month', f.connected_on)
            WHERE u(f.i * {MONTHS} + m.k, 'send')
                  < CASE f.facility_type WHEN 'hospital' THEN 0.95 WHEN 'clinic' THEN 0.7 ELSE 0.5 END
        ), dated AS (
            SELECT *, greatest(connected_on, month_start + floor(u(i * {MONTHS} + k, 'send_day')
                               * (last_day(month_start) - month_start + 1))::INTEGER) AS day,
                   {_pick(_SUBMITTED, f"u(i * {MONTHS} + k, 'kind')")} AS category,
                   u(i * {MONTHS} + k, 'rejected') < 0.003 AS rejected,
                   u(i * {MONTHS} + k, 'quarantined') < 0.02 AS quarantined
            FROM sends
        )
        SELECT row_number() OVER (ORDER BY day, i) AS bundle_key, * FROM dated""")
    base = spec.facilities + spec.access_events + 2 * spec.patients  # raw ids below: registry, access, consent
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE scale_bundle_ids AS
        SELECT *, {first_fhir_file} + bundle_key - 1 AS file_id, {base} + 2 * bundle_key - 1 AS patient_raw_id,
               {base} + 2 * bundle_key AS record_raw_id,
               'fhir/' || institution_number || '_' || strftime(day, '%Y%m%d') || '_001.json' AS path,
               institution_number || '^' || year(day) || '^B-' || lpad(bundle_key::VARCHAR, 9, '0') AS bundle_identifier
        FROM scale_bundle""")
    con.execute(f"""
        INSERT INTO ops.file_manifest
        SELECT file_id, sha256('karte-bench-file-' || file_id), path, kind,
               CASE WHEN kind = 'fhir' THEN sender END, size_bytes, 1, {landed}, true, 1
        FROM (SELECT file_id, path, kind, NULL AS sender, 1000000 AS size_bytes FROM scale_log_file
              UNION ALL SELECT file_id, path, 'fhir', institution_number, 4000 FROM scale_bundle_ids)""")
    con.execute(f"""
        INSERT INTO raw.bundle
        SELECT bundle_key, file_id, 1, 1, 2, ['Patient', CASE category {' '.join(
            f"WHEN '{k}' THEN '{t}'" for k, t in _RESOURCE_TYPE.items())} END], patient_raw_id, record_raw_id,
               json_object('resourceType', 'Bundle', 'type', 'collection',
                           'identifier', json_object('value', bundle_identifier),
                           'timestamp', strftime(day, '%Y-%m-%d') || 'T10:00:00+09:00')
        FROM scale_bundle_ids""")
    con.execute("""
        INSERT INTO staging.bundle (bundle_key, file_id, batch_id, bundle_profile, bundle_type, bundle_identifier,
                                    institution_number, is_clins, patient_raw_id, accepted)
        SELECT bundle_key, file_id, 1, 'http://jpfhir.jp/fhir/clins/StructureDefinition/JP_Bundle_CLINS',
               'collection', bundle_identifier, institution_number, true, patient_raw_id, NOT rejected
        FROM scale_bundle_ids""")
    _append_raw(con, f"""
        SELECT patient_raw_id, file_id, 1, bundle_key, 1, 0, NULL, 'Patient', '{{"resourceType":"Patient"}}'
        FROM scale_bundle_ids
        UNION ALL
        SELECT record_raw_id, file_id, 1, bundle_key, 1, 1, NULL, rt, json_object('resourceType', rt)
        FROM (SELECT *, CASE category {' '.join(f"WHEN '{k}' THEN '{t}'" for k, t in _RESOURCE_TYPE.items())} END
                        AS rt FROM scale_bundle_ids)""")
    con.execute("""
        INSERT INTO ops.record_outcome
        SELECT patient_raw_id, 1, CASE WHEN rejected THEN 'quarantined' ELSE 'duplicate' END, 'core.patient'
        FROM scale_bundle_ids
        UNION ALL
        SELECT record_raw_id, 1, CASE WHEN rejected OR quarantined THEN 'quarantined' ELSE 'loaded' END,
               'core.' || category FROM scale_bundle_ids""")
    con.execute("""
        INSERT INTO ops.quarantine (batch_id, file_id, source_file, line_no, entry_index, bundle_key, raw_id, scope,
                                    institution_number, bundle_identifier, resource_type, rule_id, message,
                                    record_count)
        SELECT 1, file_id, path, 1, NULL, bundle_key, NULL, 'bundle', institution_number, bundle_identifier,
               'Bundle', 'K-PROFILE', 'bench: planted bundle rejection', 2
        FROM scale_bundle_ids WHERE rejected
        UNION ALL
        SELECT 1, file_id, path, 1, 1, bundle_key, record_raw_id, 'resource', institution_number, bundle_identifier,
               NULL, 'K-RESOURCE-ID', 'bench: planted record rejection', 1
        FROM scale_bundle_ids WHERE quarantined AND NOT rejected""")
    # staging holds what passed the IG rules; a record the contract rejects afterwards is quarantined too
    for table, kinds in _STAGING.items():
        con.execute(f"""CREATE TABLE staging.{table} (institution_number VARCHAR, category VARCHAR, file_id BIGINT,
                                                      bundle_key BIGINT, raw_id BIGINT)""")
        con.execute(f"""INSERT INTO staging.{table} SELECT institution_number, category, file_id, bundle_key,
                                                           record_raw_id FROM scale_bundle_ids
                        WHERE NOT rejected AND category IN ({', '.join(f"'{k}'" for k in kinds)})""")
    _append_raw(con, """
        SELECT i + 1, 1, 1, NULL, i + 2, NULL, NULL, NULL, '{"resourceType":"Registry"}' FROM scale_facility""")
    con.execute("""INSERT INTO ops.record_outcome SELECT i + 1, 1, 'loaded', 'core.facility' FROM scale_facility""")


def _append_raw(con: duckdb.DuckDBPyConnection, select: str) -> None:
    """Stand-in raw records (raw.resource's columns in order) into the raw lake."""
    columns = ", ".join(name for name, _ in raw_lake.COLUMNS)
    raw_lake.append(con, f"SELECT * FROM ({select}) AS raw({columns})")


def _patients(con: duckdb.DuckDBPyConnection, spec: ScaleSpec) -> None:
    """Patients with a home facility (and for 40 % a second one), and the records those facilities sent."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE scale_patient AS
        WITH p AS (SELECT p, u(p, 'home') AS home_u, u(p, 'second') AS second_u FROM range({spec.patients}) t(p)),
        homed AS (SELECT p.*, c.facility AS home FROM p ASOF JOIN scale_connected c ON p.home_u >= c.cum_from),
        seconded AS (SELECT h.*, CASE WHEN u(h.p, 'has_second') < 0.4 AND c.facility <> h.home THEN c.facility END
                                 AS second
                     FROM homed h ASOF JOIN scale_connected c ON h.second_u >= c.cum_from)
        SELECT p, sha256('karte-bench-patient-' || p) AS patient_key, home, second,
               CASE WHEN u(p, 'consent') < 0.003 THEN 'none' WHEN u(p, 'consent') < 0.013 THEN 'subset'
                    WHEN u(p, 'consent') < 0.043 THEN 'own-facilities' ELSE 'all' END AS consent_class,
               u(p, 'withdraw') < 0.01 AS withdraws
        FROM seconded""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE scale_care AS
        WITH pair AS (SELECT p, patient_key, home AS facility, 0 AS j FROM scale_patient
                      UNION ALL SELECT p, patient_key, second, 1 FROM scale_patient WHERE second IS NOT NULL)
        SELECT pair.p, pair.patient_key, c.facility, c.institution_number, c.connected_on,
               u(pair.p * 2 + j, 'undelivered') < 0.01 AS undelivered, u(pair.p * 2 + j, 'lab') < 0.5 AS has_lab
        FROM pair JOIN scale_connected c USING (facility)""")
    care_base = 10 ** 12  # care records carry no raw provenance; ids far from raw.resource's
    con.execute(f"""
        INSERT INTO core.condition BY NAME
        SELECT institution_number, institution_number || '-C' || lpad(p::VARCHAR, 9, '0') AS resource_identifier,
               1 AS identity_occurrence, patient_key, 'condition' AS category, false AS flag_lts,
               false AS flag_uninformed, undelivered AS flag_undelivered, jst(connected_on, 36000) AS last_updated,
               false AS is_tombstoned, {care_base} + row_number() OVER () AS raw_id, 0 AS file_id
        FROM scale_care""")
    con.execute(f"""
        INSERT INTO core.lab_result BY NAME
        SELECT institution_number, institution_number || '-L' || lpad(p::VARCHAR, 9, '0') AS resource_identifier,
               1 AS identity_occurrence, patient_key, 'lab-result' AS category, false AS flag_lts,
               false AS flag_uninformed, false AS flag_undelivered, jst(connected_on, 36000) AS last_updated,
               false AS is_tombstoned, {2 * care_base} + row_number() OVER () AS raw_id, 0 AS file_id
        FROM scale_care WHERE has_lab""")


def _access_events(con: duckdb.DuckDBPyConnection, spec: ScaleSpec) -> None:
    """core.access_event in time order (raw_id), then hash-chained as ingest does."""
    snoop = spec.snoop_days * SNOOP_PATIENTS
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE scale_access AS
        WITH e AS (
            SELECT i, CASE WHEN i < {snoop} THEN 'snoop' WHEN u(i, 'stranger') < 0.003 THEN 'stranger'
                           ELSE 'care' END AS plant,
                   -- snoopers view consecutive (so distinct) patients; everyone else a random one
                   CASE WHEN i < {snoop} THEN (hash(i // {SNOOP_PATIENTS}, 'snoop', {spec.seed}) % {spec.patients}
                                              + i % {SNOOP_PATIENTS}) % {spec.patients}
                        ELSE floor(u(i, 'patient') * {spec.patients}) END::BIGINT AS p
            FROM range({spec.access_events}) t(i)
        ), chosen AS (   -- the facility: the patient's own (home, or second for 30 %), or a stranger
            SELECT e.*, pt.patient_key,
                   CASE WHEN e.plant = 'care' THEN CASE WHEN pt.second IS NOT NULL AND u(e.i, 'at_second') < 0.3
                                                        THEN pt.second ELSE pt.home END END AS own,
                   CASE WHEN e.plant = 'snoop' THEN u(e.i // {SNOOP_PATIENTS}, 'snooper')
                        ELSE u(e.i, 'stranger_at') END AS pick_u
            FROM e JOIN scale_patient pt USING (p)
        ), placed AS (
            SELECT ch.i, ch.plant, ch.p, ch.patient_key, coalesce(ch.own, s.facility) AS facility
            FROM chosen ch ASOF LEFT JOIN scale_connected s ON ch.pick_u >= s.cum_from
        ), located AS (
            SELECT pl.*, c.institution_number, c.facility_type, c.staff, c.emergency_heavy,
                   CASE WHEN pl.plant = 'snoop'
                        THEN c.connected_on + floor(u(pl.i // {SNOOP_PATIENTS}, 'snoop_day')
                                                    * (DATE '{END}' - c.connected_on + 1))::INTEGER
                        ELSE c.connected_on + floor(u(pl.i, 'day') * (DATE '{END}' - c.connected_on + 1))::INTEGER
                        END AS day,
                   CASE WHEN pl.plant = 'snoop' THEN 9 * 3600 + (pl.i % {SNOOP_PATIENTS}) * 600
                        ELSE 8 * 3600 + floor(u(pl.i, 'time') * 36000) END AS seconds,
                   CASE WHEN pl.plant = 'snoop' THEN hash(pl.i // {SNOOP_PATIENTS}, 'snooper_id', {spec.seed}) % 4 * 10
                        ELSE floor(u(pl.i, 'staff') * c.staff) END::INTEGER AS staff_no,
                   u(pl.i, 'role') < 0.001 AND pl.plant <> 'snoop' AS clerk
            FROM placed pl JOIN scale_connected c ON c.facility = pl.facility
        )
        SELECT i, {_uuid(f"'karte-bench-access-{spec.seed}-' || i")} AS access_id, plant, p, patient_key, facility,
               institution_number AS viewer, facility_type, day,
               jst(day, seconds) AS recorded,
               CASE WHEN clerk THEN CASE WHEN u(i, 'clerk_kind') < 0.7 THEN 'C001' ELSE 'M001' END
                    WHEN facility_type = 'hospital' THEN
                         CASE WHEN staff_no % 10 < 4 THEN 'D' WHEN staff_no % 10 < 8 THEN 'N'
                              WHEN staff_no % 10 = 8 THEN 'P' ELSE 'L' END || lpad(staff_no::VARCHAR, 3, '0')
                    ELSE CASE WHEN staff_no < 2 THEN 'D' ELSE 'N' END || lpad(staff_no::VARCHAR, 3, '0') END AS staff_id,
               CASE WHEN clerk THEN CASE WHEN u(i, 'clerk_kind') < 0.7 THEN 'clerk' ELSE 'medical-clerk' END
                    WHEN facility_type = 'hospital' THEN
                         CASE WHEN staff_no % 10 < 4 THEN 'doctor' WHEN staff_no % 10 < 8 THEN 'nurse'
                              WHEN staff_no % 10 = 8 THEN 'pharmacist' ELSE 'clinical-laboratory-technologist' END
                    WHEN staff_no < 2 THEN CASE WHEN facility_type = 'dental' THEN 'dentist' ELSE 'doctor' END
                    ELSE 'nurse' END AS staff_role,
               CASE WHEN plant <> 'snoop' AND (u(i, 'emergency') < 0.005 OR (emergency_heavy AND u(i, 'emergency') < 0.3))
                    THEN 'ETREAT' ELSE 'TREAT' END AS purpose,
               CASE WHEN u(i, 'failed') < 0.003 THEN '4' ELSE '0' END AS outcome,
               CASE WHEN u(i, 'no_kind') < 0.01 THEN []::VARCHAR[]
                    ELSE [{_pick(_VIEWED, "u(i, 'kind')")}] END AS kinds,
               u(i, 'names_record') < 0.5 AS names_record
        FROM located""")
    con.execute(f"""
        INSERT INTO core.access_event BY NAME
        SELECT access_id, patient_key, viewer, recorded,
               purpose, 'R' AS action, outcome, kinds,
               {spec.facilities} + row_number() OVER (ORDER BY recorded, i) AS raw_id, staff_id, staff_role,
               CASE WHEN plant = 'care' AND names_record AND kinds = ['condition']
                    THEN [viewer || '|' || viewer || '-C' || lpad(p::VARCHAR, 9, '0')] ELSE []::VARCHAR[] END
                   AS resource_refs
        FROM scale_access ORDER BY recorded, i""")
    _append_raw(con, f"""
        SELECT a.raw_id, 2 + datediff('month', DATE '{START}', timezone('Asia/Tokyo', a.recorded)::DATE), 1, NULL,
               row_number() OVER (PARTITION BY date_trunc('month', timezone('Asia/Tokyo', a.recorded)) ORDER BY a.raw_id),
               NULL, NULL, 'AuditEvent', '{{"resourceType":"AuditEvent"}}'
        FROM core.access_event a""")
    con.execute("INSERT INTO ops.record_outcome SELECT raw_id, 1, 'loaded', 'core.access_event' FROM core.access_event")


def _consents(con: duckdb.DuckDBPyConnection, spec: ScaleSpec) -> None:
    """One Consent per viewed patient just before their first view; withdrawals half-way; then the intervals."""
    kinds = "[" + ", ".join(f"'{k}'" for k in _KINDS) + "]"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE scale_consent AS
        WITH span AS (SELECT p, min(recorded) AS first_view, max(recorded) AS last_view FROM scale_access GROUP BY p)
        SELECT pt.p, pt.patient_key, pt.consent_class, pt.home, pt.second,
               s.first_view - to_minutes(1 + floor(u(pt.p, 'grant_lead') * 20)::BIGINT) AS granted_at,
               CASE WHEN pt.withdraws AND s.last_view > s.first_view
                    THEN s.first_view + (s.last_view - s.first_view) / 2 END AS withdrawn_at,
               -- a partial consent leaves out 3 of the 9 kinds
               CASE WHEN pt.consent_class = 'subset'
                    THEN list_filter({kinds}, lambda k, j: (j - 1) % 3 <> pt.p % 3) ELSE {kinds} END AS granted_kinds
        FROM scale_patient pt JOIN span s USING (p)
        WHERE pt.consent_class <> 'none'""")
    base = spec.facilities + spec.access_events
    grant_id = _uuid(f"'karte-bench-consent-{spec.seed}-' || c.p")
    withdraw_id = _uuid(f"'karte-bench-withdrawal-{spec.seed}-' || c.p")
    con.execute(f"""
        INSERT INTO core.consent_event
        WITH c AS (
            SELECT c.*, CASE WHEN c.consent_class = 'own-facilities'
                             THEN list_filter([h.institution_number, s.institution_number], lambda x: x IS NOT NULL)
                             ELSE [NULL::VARCHAR] END AS grantees
            FROM scale_consent c LEFT JOIN scale_connected h ON h.facility = c.home
            LEFT JOIN scale_connected s ON s.facility = c.second
        )
        SELECT {grant_id}, c.patient_key, c.granted_at, 'active', 'permit', kind, grantee, c.granted_at, NULL,
               {base} + 2 * c.p + 1
        FROM (SELECT *, unnest(granted_kinds) AS kind FROM c) c, unnest(c.grantees) AS g(grantee)""")
    con.execute(f"""
        INSERT INTO core.consent_event
        SELECT {withdraw_id}, c.patient_key, c.withdrawn_at, 'inactive', 'deny', NULL, NULL, c.withdrawn_at, NULL,
               {base} + 2 * c.p + 2
        FROM scale_consent c WHERE c.withdrawn_at IS NOT NULL""")
    _append_raw(con, f"""
        SELECT raw_id, 2 + {MONTHS} + datediff('month', DATE '{START}',
                                              timezone('Asia/Tokyo', any_value(event_time))::DATE),
               1, NULL, 1, NULL, NULL, 'Consent', '{{"resourceType":"Consent"}}'
        FROM core.consent_event GROUP BY raw_id""")
    con.execute("INSERT INTO ops.record_outcome SELECT DISTINCT raw_id, 1, 'loaded', 'core.consent_event' "
                "FROM core.consent_event")
    con.execute("CREATE OR REPLACE TEMP TABLE affected_patient AS SELECT DISTINCT patient_key FROM core.consent_event")
    con.execute(f"INSERT INTO core.consent_interval {INTERVALS_SQL}")


def _planted(con: duckdb.DuckDBPyConnection) -> None:
    """bench.planted: access × rule the generator made suspicious, from its own choices (not the audit's SQL)."""
    all_kinds = "[" + ", ".join(f"'{k}'" for k in _KINDS) + "]"
    con.execute("CREATE SCHEMA IF NOT EXISTS bench")
    con.execute(f"""
        CREATE OR REPLACE TABLE bench.planted AS
        WITH a AS (
            SELECT s.*, s.purpose = 'ETREAT' AS emergency,
                   s.facility IS DISTINCT FROM pt.home AND s.facility IS DISTINCT FROM pt.second AS stranger,
                   c.consent_class, c.granted_at, c.withdrawn_at, c.granted_kinds,
                   CASE WHEN len(s.kinds) = 0 THEN {all_kinds} ELSE s.kinds END AS kinds_checked
            FROM scale_access s JOIN scale_patient pt USING (p) LEFT JOIN scale_consent c USING (p)
        )
        SELECT access_id, rule_id FROM (
            SELECT access_id, 'A-ROLE' AS rule_id FROM a WHERE staff_role IN ('clerk', 'medical-clerk')
            UNION ALL SELECT access_id, 'A-EMERGENCY' FROM a WHERE emergency
            UNION ALL SELECT access_id, 'A-NO-CARE' FROM a WHERE stranger AND NOT emergency
            UNION ALL SELECT access_id, 'A-VOLUME' FROM a WHERE plant = 'snoop'
            UNION ALL SELECT a.access_id, 'A-UNDELIVERED' FROM a JOIN scale_care c ON c.p = a.p AND c.facility = a.facility
                      WHERE c.undelivered AND a.plant = 'care' AND a.names_record AND a.kinds = ['condition']
            UNION ALL SELECT access_id, 'A-AFTER-WITHDRAWAL' FROM a
                      WHERE NOT emergency AND withdrawn_at IS NOT NULL AND recorded >= withdrawn_at
            UNION ALL SELECT access_id, 'A-NO-CONSENT' FROM a
                      WHERE NOT emergency AND NOT coalesce(recorded >= withdrawn_at, false)
                        AND (consent_class IS NULL
                             OR (consent_class = 'subset' AND len(list_filter(kinds_checked,
                                                                  lambda k: NOT list_contains(granted_kinds, k))) > 0)
                             OR (consent_class = 'own-facilities' AND stranger))
        ) ORDER BY rule_id, access_id""")


def audit_state(con: duckdb.DuckDBPyConnection, backlog_days: int = AUDIT_BACKLOG_DAYS) -> dict:
    """The audit's stored state as the nightly run leaves it (pipelines/audit/aggregates.py, docs/audit.md): the
    whole chain verified in full (it must pass) with the checkpoint on the last row before the last
    `backlog_days` JST days, and the aggregates refreshed up to that row. The report then verifies and counts
    those days' accesses itself — what arrived since the last nightly run."""
    cutoff = jst_midnight_sql(END - timedelta(days=backlog_days - 1))
    seq, raw_id = con.execute(f"SELECT max(chain_seq), max(raw_id) FROM core.access_event WHERE recorded < {cutoff}"
                              ).fetchone()
    verdict = verify_chain(con, full=True)
    if not verdict.intact:
        raise RuntimeError(f"the scale warehouse's access log fails its own chain: {verdict.message()}")
    row_hash = con.execute(f"SELECT row_hash FROM core.access_event WHERE chain_seq = {seq}").fetchone()[0]
    con.execute(f"INSERT INTO ops.access_chain_checkpoint VALUES ({seq}, '{row_hash}', now(), true, {seq})")
    return refresh_aggregates(con, through_raw_id=raw_id)


def adoption_state(con: duckdb.DuckDBPyConnection, backlog_days: int = AUDIT_BACKLOG_DAYS) -> dict:
    """The adoption report's stored facts as the nightly run leaves them (pipelines/reports/adoption/stored.py):
    refreshed through the last file sent before the last `backlog_days` days, whose files the report computes
    itself, as it does the audit's backlog. Submission files are numbered in day order (_files)."""
    cutoff = (END - timedelta(days=backlog_days - 1)).isoformat()
    through = con.execute(f"SELECT max(file_id) FROM ops.file_manifest WHERE kind <> 'fhir' "
                          f"OR regexp_extract(path, '_(\\d{{8}})_', 1) < '{cutoff.replace('-', '')}'").fetchone()[0]
    return refresh_facts(con, through_file_id=through)


def build_scale_warehouse(path: str | Path, facilities: int = NATIONAL_FACILITIES,
                          access_events: int = NATIONAL_ACCESS_EVENTS, seed: int = 0,
                          progress: Callable[[str], None] | None = None) -> dict:
    """Create the synthetic national warehouse at `path` (must not exist); returns its row counts and the
    seconds each step took."""
    spec = ScaleSpec(facilities, access_events, seed)
    say = progress or (lambda _step: None)
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists: the scale warehouse is built from scratch")
    steps: dict[str, float] = {}
    con = connect(path)
    try:
        # the generator alone may use most of the machine's memory; DuckDB spills beyond it
        con.execute("SET preserve_insertion_order = false; SET enable_progress_bar = false; "
                    "SET memory_limit = '8GB'")
        _macros(con, spec)
        for name, step in (("facilities", _facilities), ("submissions", _files), ("patients", _patients),
                           ("access events", _access_events), ("consents", _consents)):
            say(f"scale warehouse: {name}")
            started = time.perf_counter()
            step(con, spec)
            steps[name] = round(time.perf_counter() - started, 1)
        say("scale warehouse: hash chain")
        # the chain is verified fastest in insertion order, which DuckDB keeps only with this setting on
        con.execute("SET preserve_insertion_order = true")
        started = time.perf_counter()
        con.execute("BEGIN TRANSACTION")
        chain_new_rows(con)
        con.execute("COMMIT")
        steps["hash chain"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        _planted(con)
        steps["planted truth"] = round(time.perf_counter() - started, 1)
        say("scale warehouse: audit state (full chain verification, aggregates)")
        started = time.perf_counter()
        audit_state(con)
        steps["audit state"] = round(time.perf_counter() - started, 1)
        say("scale warehouse: adoption facts")
        started = time.perf_counter()
        adoption_state(con)
        steps["adoption facts"] = round(time.perf_counter() - started, 1)
        rows = dict(con.execute("""
            SELECT schema_name || '.' || table_name, estimated_size FROM duckdb_tables()
            WHERE NOT temporary AND estimated_size > 0 ORDER BY 1""").fetchall())
        con.execute("CREATE TABLE bench.spec AS SELECT ? AS facilities, ? AS access_events, ? AS seed, ? AS rows, "
                    "? AS steps", [facilities, access_events, seed, json.dumps(rows), json.dumps(steps)])
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return {"facilities": facilities, "access_events": access_events, "patients": spec.patients, "seed": seed,
            "months": MONTHS, "start": START.isoformat(), "end": END.isoformat(), "rows": rows, "steps": steps}


#: one timed report in a fresh interpreter: the CLI's own main(), outputs into a folder of their own; the clock
#: starts before the CLI is imported (its imports count, interpreter start-up does not)
_CHILD = """
import io, json, sys, time
from contextlib import redirect_stdout
from pipelines.bench import own_peak_rss_kib
started, cpu = time.perf_counter(), time.process_time()
from pipelines.cli import main
name, warehouse, out = sys.argv[1:4]
with redirect_stdout(io.StringIO()) as printed:
    code = main(["report", name, "--warehouse", warehouse, "--out", out, "--json"])
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
if code:
    sys.exit(f"karte report {name} exited {code}")
peak = own_peak_rss_kib() / 1024
print("KARTE-BENCH", json.dumps({"seconds": seconds, "cpu_seconds": cpu, "cli": json.loads(printed.getvalue().splitlines()[-1]),
                  "peak_rss_mib": peak}))
"""
#: the warehouse is built in a child too, so the timed reports never share the machine with its memory
_BUILD = """
import sys
from pipelines.bench.scale import build_scale_warehouse
build_scale_warehouse(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
"""


@dataclass
class ReportTiming:
    runs_seconds: list[float] = field(default_factory=list)
    runs_cpu_seconds: list[float] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    rows: dict = field(default_factory=dict)

    def summary(self) -> dict:
        median = statistics.median(self.runs_seconds)
        return {"best_seconds": round(min(self.runs_seconds), 2), "median_seconds": round(median, 2),
                "runs_seconds": [round(x, 2) for x in self.runs_seconds],
                "median_cpu_seconds": round(statistics.median(self.runs_cpu_seconds), 1),
                "peak_rss_mib": round(self.peak_rss_mib), "rows": self.rows,
                "within_target": median <= TARGET_SECONDS}


@dataclass
class ScaleBench:
    facilities: int
    access_events: int
    patients: int
    months: int
    repeat: int
    target_seconds: float
    setup_seconds: float
    warehouse_mib: float
    warehouse_rows: dict
    load_average: list
    adoption: dict
    audit: dict

    def as_dict(self) -> dict:
        return asdict(self)


def _report_rows(name: str, out: Path, cli: dict) -> dict:
    import polars as pl

    def count(path: Path) -> int:
        scan = pl.scan_parquet(path) if path.suffix == ".parquet" else pl.scan_csv(path, infer_schema=False)
        return scan.select(pl.len()).collect().item()

    if name == "adoption":
        return {"registered": cli["registered"], "connected": cli["connected"],
                "monthly_rows": count(out / "adoption_monthly.parquet"),
                "facility_rows": count(out / "adoption_facility.parquet")}
    return {"findings": count(out / "audit_cases.csv"), "summary_cells": count(out / "audit_summary.csv")}


def time_report(name: str, warehouse: Path, out: Path) -> dict:
    """One `karte report <name>` in a fresh process (its own timing, CPU and peak RSS) and the rows it wrote."""
    result = child_figures(_CHILD, name, str(warehouse), str(out), what=f"report benchmark child ({name})")
    result["rows"] = _report_rows(name, out, result["cli"])
    return result


def _spec_of(path: Path) -> tuple[int, int] | None:
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return None
    try:
        return con.execute("SELECT facilities, access_events FROM bench.spec").fetchone()
    except duckdb.Error:
        return None
    finally:
        con.close()


def run_scale_bench(facilities: int = NATIONAL_FACILITIES, access_events: int = NATIONAL_ACCESS_EVENTS,
                    repeat: int = 3, warehouse: str | Path | None = None,
                    progress: Callable[[str], None] | None = None) -> ScaleBench:
    """Build (or reuse, when `warehouse` names one of the same sizes) the scale warehouse, then time both
    reports `repeat` times each, alternating, every run in a fresh process."""
    say = progress or (lambda _step: None)
    with tempfile.TemporaryDirectory(prefix="karte-scale-") as tmp:
        path = Path(warehouse) if warehouse else Path(tmp) / "scale.duckdb"
        started = time.perf_counter()
        if path.exists():
            if _spec_of(path) != (facilities, access_events):
                raise RuntimeError(f"{path} is not a scale warehouse of {facilities:,} facilities and "
                                   f"{access_events:,} access events; remove it or name another path")
            say(f"reusing the scale warehouse {path}")
        else:
            say(f"building the scale warehouse ({facilities:,} facilities, {access_events:,} access events)")
            done = subprocess.run([sys.executable, "-c", _BUILD, str(path), str(facilities), str(access_events)],
                                  capture_output=True, text=True, check=False)
            if done.returncode:
                raise RuntimeError(f"building the scale warehouse failed: {done.stderr.strip().splitlines()[-1:]}")
        setup = time.perf_counter() - started
        con = duckdb.connect(str(path), read_only=True)
        try:
            built = json.loads(con.execute("SELECT rows FROM bench.spec").fetchone()[0])
        finally:
            con.close()
        timings = {"adoption": ReportTiming(), "audit": ReportTiming()}
        load = [round(os.getloadavg()[0], 2)]
        for run in range(repeat):
            for name in (("adoption", "audit") if run % 2 == 0 else ("audit", "adoption")):
                say(f"report {name}, run {run + 1} of {repeat}")
                out = Path(tmp) / f"{name}-{run}"
                result = time_report(name, path, out)
                shutil.rmtree(out, ignore_errors=True)
                timing = timings[name]
                timing.runs_seconds.append(result["seconds"])
                timing.runs_cpu_seconds.append(result["cpu_seconds"])
                timing.peak_rss_mib = max(timing.peak_rss_mib, result["peak_rss_mib"])
                timing.rows = result["rows"]
                load.append(round(os.getloadavg()[0], 2))
        size = path.stat().st_size / 2**20
    keep = ("core.facility", "core.access_event", "core.consent_event", "core.consent_interval", "raw.bundle",
            "raw.resource", "bench.planted")
    return ScaleBench(
        facilities=facilities, access_events=access_events, patients=ScaleSpec(facilities, access_events).patients,
        months=MONTHS, repeat=repeat, target_seconds=TARGET_SECONDS, setup_seconds=round(setup, 1),
        warehouse_mib=round(size), warehouse_rows={k: built.get(k, 0) for k in keep}, load_average=load,
        adoption=timings["adoption"].summary(), audit=timings["audit"].summary())


def headline(b: dict) -> str:
    """The figures the targets are about, on one line (`karte bench --history`)."""
    return (f"adoption {b['adoption']['median_seconds']:.2f} s, audit {b['audit']['median_seconds']:.2f} s "
            f"(medians; {b['facilities']:,} facilities, {b['access_events']:,} access events)")


def table(b: dict) -> str:
    """The printed lines of the 'reports' section."""
    rows = b["warehouse_rows"]
    lines = [
        (f"reports benchmark: {b['facilities']:,} facilities × {b['months']} months, {b['access_events']:,} access "
         f"events ({b['patients']:,} patients, {rows['raw.bundle']:,} bundles), each report {b['repeat']}× in a "
         f"fresh process, target ≤ {b['target_seconds']:.0f} s"),
        f"  {'report (CLI, all files)':<26}{'best s':>8}{'median s':>10}{'cpu s':>8}{'peak RSS':>12}  rows",
    ]
    for name in ("adoption", "audit"):
        r = b[name]
        shown = ", ".join(f"{k} {v:,}" for k, v in r["rows"].items())
        verdict = "within target" if r["within_target"] else "NOT within target"
        lines.append(f"  {name:<26}{r['best_seconds']:>8.2f}{r['median_seconds']:>10.2f}{r['median_cpu_seconds']:>8.1f}"
                     f"{r['peak_rss_mib']:>8,} MiB  {shown}  — {verdict}")
    lines.append(f"  warehouse {b['warehouse_mib']:,} MiB, setup {b['setup_seconds']:.0f} s; load average (1 min) "
                 f"{min(b['load_average'])}–{max(b['load_average'])} on {os.cpu_count()} cores during the runs")
    return "\n".join(lines)
