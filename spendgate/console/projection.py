"""Where a budget is heading: the period's spend so far, extended at its average rate to the reset.

rate = spend so far / time elapsed in the period (at least an hour, so the first minutes of a
month do not extrapolate a single call); projected = spend + rate x time left. When the projection
passes the hard stop, the date it is reached is (hard limit - spend) / rate from now, in the
budget's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

MIN_ELAPSED_S = 3600


@dataclass(frozen=True, slots=True)
class Outlook:
    projected_nanos: int
    hard_stop_at: datetime | None  # when the hard limit is reached at this rate (None: not before reset)
    verdict: str  # 'on track', 'will hit the hard stop on the 24th', 'at the hard stop'


def ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def outlook(
    spent_nanos: int, hard_nanos: int, start: datetime, end: datetime, now: datetime, timezone: str
) -> Outlook:
    elapsed = max((now - start).total_seconds(), MIN_ELAPSED_S)
    left = max((end - now).total_seconds(), 0)
    rate = Fraction(spent_nanos) / Fraction(elapsed)  # nanos per second
    projected = spent_nanos + round(rate * Fraction(left))
    if spent_nanos >= hard_nanos:
        return Outlook(projected, now, "at the hard stop: calls are refused until the reset")
    if projected < hard_nanos or rate == 0:
        return Outlook(projected, None, "on track")
    hit = now + timedelta(seconds=float(Fraction(hard_nanos - spent_nanos) / rate))
    local = hit.astimezone(ZoneInfo(timezone))
    when = f"on the {ordinal(local.day)}" if (end - now) > timedelta(days=1) else f"at {local:%H:%M}"
    return Outlook(projected, hit, f"will hit the hard stop {when}")
