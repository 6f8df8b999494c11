"""Timestamps in one format everywhere: ISO-8601 UTC with microseconds and a Z."""

from __future__ import annotations

import functools
import math
import time
from datetime import UTC, datetime


def utc_now_iso() -> str:
    return iso(datetime.now(UTC))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_epoch(seconds: float) -> str:
    """Same text as iso(datetime.fromtimestamp(seconds, UTC)), without building a datetime: three
    of these per ledger row, on the request path. Microseconds are rounded half to even, as
    datetime does."""
    whole = math.floor(seconds)
    micros = _round((seconds - whole) * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    # The six digits as two looked-up triples: a format spec ({micros:06d}) costs twice the whole
    # rest of this function, and str() of an int a quarter of it.
    return f"{_whole_second(whole)}.{_TRIPLES[micros // 1000]}{_TRIPLES[micros % 1000]}Z"


_TRIPLES = tuple(f"{n:03d}" for n in range(1000))  # "000" to "999"
# float.__round__ itself: round(x) finds it on x's type and binds it first, on every call.
_round = float.__round__


@functools.lru_cache(maxsize=16)
def _whole_second(whole: int) -> str:
    # A row's three timestamps, and every call in the same second, share this text: the
    # strftime is done once a second rather than three times a call (a memo of a pure function).
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
