"""`karte bench`: performance measurements, one section per subject, written together to data/reports/bench.json.

Sections: ``views`` (pipelines/bench/views.py — the compiled staging view against hand-written SQL) and
``machine`` (pipelines/bench/report.py — what the numbers were measured on). Other subjects add their own
section under their own key with ``report.write_sections``; writing one section keeps the others in the file.
"""

#: Observation resources the views benchmark flattens by default (`make bench`).
DEFAULT_RESOURCES = 1_000_000
#: the national scale the 'reports' section times the adoption and audit reports at (`pipelines/bench/scale.py`)
NATIONAL_FACILITIES = 180_000
NATIONAL_ACCESS_EVENTS = 10_000_000
