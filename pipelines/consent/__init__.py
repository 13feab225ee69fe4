"""Consent: event history → intervals (core.consent_interval) → the consent-keyed read path (schema shared)."""
