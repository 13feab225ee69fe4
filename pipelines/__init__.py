"""Karte: Dagster wiring and the pure domain library it runs."""

import os

# numpy comes in with pandera and pandas, never for linear algebra here; its OpenBLAS otherwise starts a thread
# per core that spins on import: 0.1 CPU-second a process on the 2-core machine (`import numpy`: 0.16 against
# 0.06 CPU-s), taken from the run it starts (the CLI, every Dagster step process). Set before anything imports
# numpy; an operator's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
