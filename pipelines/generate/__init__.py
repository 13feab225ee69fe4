"""Deterministic JP-CLINS sample data with fault injection (`karte generate`).

`generate(out_dir, facilities=60, patients=1500, seed=42, fault_rate=0.0, start='2025-01-01',
end='2026-10-31') -> GenerateSummary` writes

    OUT/fhir/<医療機関番号>_<YYYYMMDD>_<seq>.json[.gz] | .ndjson[.gz]   JP_Bundle_CLINS / eReferral / eDischargeSummary
                                                                     / eCheckupGeneral (CLINS and generic variants)
    OUT/checkups/<提出元>_<提出先>_<YYYYMMDD><n>_<区分>.zip             特定健診 XML (index, summary, one CDA per person)
    OUT/consent/consent_<YYYYMM>.ndjson                              FHIR R4 Consent (Karte's consent model)
    OUT/access/audit_<YYYYMM>.ndjson                                 FHIR R4 AuditEvent (IHE BALP PatientRead)
    OUT/facilities/facility_registry.csv                             facility registry
    OUT/_manifest.json                                               parameters, counts, every injected fault
    OUT/_truth/patients.csv                                          raw identifiers of every patient (leak tests)
    OUT/_truth/checkups.csv                                          every checkup item's true value (report tests)

The same arguments give byte-identical output; nothing depends on the wall clock.
"""

__all__ = ["GenerateSummary", "check_arguments", "generate"]


def __getattr__(name: str):
    # Imported on first use: every `karte` command builds the `generate` sub-command's parser, and importing
    # the generator costs ~0.4 s that a report or an ingest should not pay.
    if name in __all__:
        from pipelines.generate import generator

        return getattr(generator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
