"""FHIR (JP-CLINS) knowledge: systems, code lists, file reading."""
