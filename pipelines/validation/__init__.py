"""Validation: IG rules, terminology and data contracts."""
