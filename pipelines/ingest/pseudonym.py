"""Pseudonymous patient identity: HMAC-SHA256 over the NFKC-normalised 被保険者個人識別子.

NFKC makes `00012345:あいう:１８７:05` and `00012345:あいう:187:05` one patient (senders differ in
full-width digits). The identifier itself is never written: raw holds it sealed (pipelines/ingest/vault.py) and
staging reveals it in memory only to check its shape and hash it.
"""

import hashlib
import hmac
import unicodedata

import polars as pl


def normalise_member_id(member_id: str) -> str:
    return unicodedata.normalize("NFKC", member_id).strip()


def patient_key(member_id: str, key: bytes) -> str:
    return hmac.new(key, normalise_member_id(member_id).encode("utf-8"), hashlib.sha256).hexdigest()


def patient_keys(member_ids: pl.Series, key: bytes) -> pl.Series:
    """Hashes each distinct identifier once (patients repeat across thousands of resources)."""
    distinct = member_ids.drop_nulls().unique()
    mapping = {m: patient_key(m, key) for m in distinct.to_list()}
    return member_ids.replace_strict(mapping, default=None, return_dtype=pl.String)
