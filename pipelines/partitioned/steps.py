"""Which of the ingest steps run where: parse in the first map, staging in the second, core in the reduce."""

from collections.abc import Callable

import duckdb

from pipelines.config import Settings
from pipelines.consent import intervals
from pipelines.ingest.run import processing_steps, step_dependencies
from pipelines.ingest.upsert import CORE_TABLES

Step = tuple[str, Callable[[duckdb.DuckDBPyConnection], object]]
PARSE_STEP = "raw.resource"


def split_steps(settings: Settings) -> tuple[Step, list[Step], list[Step]]:
    """(parse, staging steps, core steps) of `processing_steps`, each in its order (the serial run interleaves
    them: some core steps start early to shorten the run's longest chain). Refuses a staging step that waits
    for a core step: the map/reduce split relies on staging reading nothing from core."""
    steps = processing_steps(settings)
    core_names = {t.consumer for t in CORE_TABLES} | {intervals.CONSUMER}
    if steps[0][0] != PARSE_STEP:
        raise RuntimeError(f"the first ingest step is {steps[0][0]}, not {PARSE_STEP}: update pipelines/partitioned")
    staging = [s for s in steps[1:] if s[0] not in core_names]
    core = [s for s in steps[1:] if s[0] in core_names]
    after = step_dependencies()
    for name, _ in staging:
        if waits_for := core_names.intersection(after.get(name, ())):
            raise RuntimeError(f"staging step {name} waits for {', '.join(sorted(waits_for))}: the partitioned run "
                               "cannot split them")
    return steps[0], staging, core
