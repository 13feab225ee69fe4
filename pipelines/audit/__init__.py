"""The audit: who saw what, and was it allowed — findings over core.access_event (rules.py), and the hash chain
that makes the access log tamper-evident (chain.py). docs/audit.md is the reviewer's guide."""
