"""Helpers shared by the generator modules: seeded randomness, JST timestamps, small FHIR fragments."""

import random
import uuid
from datetime import date, datetime, timedelta, timezone

JST = timezone(timedelta(hours=9))
HALF_WIDTH_TO_FULL = str.maketrans("0123456789", "０１２３４５６７８９")


def rng_for(seed: int, *parts: object) -> random.Random:
    """An independent, reproducible stream for one part of the sample (str seeds hash with SHA-512)."""
    return random.Random(":".join([str(seed), *map(str, parts)]))


def new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def fhir_instant(dt: datetime) -> str:
    """`2025-03-14T10:23:05+09:00` (FHIR instant / dateTime with seconds and the JST offset)."""
    return dt.astimezone(JST).replace(microsecond=0).isoformat()


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=JST)


def random_day(rng: random.Random, first: date, last: date) -> date:
    span = (last - first).days
    return first + timedelta(days=rng.randint(0, max(span, 0)))


def weighted_choice(rng: random.Random, items, weights):
    return rng.choices(items, weights=weights, k=1)[0]


def to_full_width_digits(text: str) -> str:
    return text.translate(HALF_WIDTH_TO_FULL)


def coding(system: str, code: str, display: str | None = None) -> dict:
    c = {"system": system, "code": code}
    if display is not None:
        c["display"] = display
    return c


def concept(system: str, code: str, display: str | None = None, text: str | None = None) -> dict:
    cc: dict = {"coding": [coding(system, code, display)]}
    if text is not None:
        cc["text"] = text
    return cc


def xhtml_div(text: str) -> dict:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {"status": "additional", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{escaped}</div>'}
