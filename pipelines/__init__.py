"""Karte: Dagster wiring and the pure domain library it runs."""
