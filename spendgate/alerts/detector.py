"""The anomaly detector: pure functions over daily spend series (nano-dollars per local day).

Nothing here reads the database or the clock, so the live check and the backtest run the same code.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from spendgate.alerts.config import DetectParams
from spendgate.store.spend import SpendByHour

Series = Mapping[date, int]  # local day -> spend in nano-dollars


@dataclass(frozen=True, slots=True)
class Baseline:
    nanos: float  # average spend per day over the baseline days
    days: tuple[date, ...]  # the days averaged
    history_days: int  # of those, days with any spend

    def effective(self, params: DetectParams) -> float:
        """The baseline compared with: never below the configured minimum (keeps tiny groups quiet)."""
        return max(self.nanos, float(params.min_baseline_nanos))


@dataclass(frozen=True, slots=True)
class Assessment:
    today_nanos: int
    burn_nanos: int
    baseline: Baseline
    ratio: float | None  # today / effective baseline; None without history
    new_group: bool  # fewer than min_history_days days with spend: only the absolute floor applies
    fire: str | None  # "daily", "burn", "new_floor" or None
    holds: bool  # the condition still holds (an open alert stays open)
    note: str = ""


def baseline_days(today: date, params: DetectParams) -> tuple[date, ...]:
    """The days a baseline averages: the previous N days, or the same weekday over the last N weeks."""
    if params.same_weekday_weeks > 0:
        return tuple(today - timedelta(weeks=n) for n in range(1, params.same_weekday_weeks + 1))
    return tuple(today - timedelta(days=n) for n in range(1, params.baseline_days + 1))


def baseline(series: Series, today: date, params: DetectParams) -> Baseline:
    days = baseline_days(today, params)
    values = [series.get(day, 0) for day in days]
    return Baseline(nanos=sum(values) / len(values), days=days, history_days=sum(1 for v in values if v > 0))


def assess(
    series: Series,
    today: date,
    today_nanos: int,
    params: DetectParams,
    *,
    at_check_time: bool,
    burn_nanos: int = 0,
    threshold: float | None = None,
) -> Assessment:
    """Should this group alert now? `today_nanos` is today's spend so far, `burn_nanos` the spend in
    the last burn window. The daily check fires only at/after the check time; the burn check any time."""
    limit = params.threshold if threshold is None else threshold
    base = baseline(series, today, params)
    if base.history_days < params.min_history_days:
        holds = today_nanos >= params.new_floor_nanos and today_nanos >= params.min_spend_nanos
        note = (
            f"no baseline: only {base.history_days} of the last {len(base.days)} baseline days had spend "
            f"(fewer than {params.min_history_days}), so this alert uses the absolute floor of "
            f"${params.new_floor_nanos / 1e9:,.2f}"
        )
        return Assessment(
            today_nanos, burn_nanos, base, None, True, "new_floor" if holds else None, holds, note
        )
    effective = base.effective(params)
    ratio = today_nanos / effective
    daily = ratio >= limit and today_nanos >= params.min_spend_nanos
    burn = burn_nanos >= params.burn_day_fraction * effective and burn_nanos >= params.min_spend_nanos
    fire = "daily" if daily and at_check_time else ("burn" if burn else None)
    note = ""
    if base.nanos < params.min_baseline_nanos:
        note = f"baseline raised to the minimum of ${params.min_baseline_nanos / 1e9:,.2f}"
    return Assessment(today_nanos, burn_nanos, base, ratio, False, fire, daily or burn, note)


@dataclass(frozen=True, slots=True)
class Contributor:
    dimension: str  # key, user, use_case, model, session
    value: str
    today_nanos: int
    baseline_nanos: float
    increase_nanos: float

    @property
    def ratio(self) -> float | None:
        return self.today_nanos / self.baseline_nanos if self.baseline_nanos > 0 else None


def rank_contributors(
    dimension: str, today: Mapping[str | None, int], base: Mapping[str | None, float], limit: int = 3
) -> list[Contributor]:
    """Values of one dimension ordered by how much they added over their own baseline."""
    out = []
    for value in set(today) | set(base):
        now, before = today.get(value, 0), base.get(value, 0.0)
        if now - before > 0:
            out.append(Contributor(dimension, value or "(none)", now, before, now - before))
    out.sort(key=lambda c: (-c.increase_nanos, c.value))
    return out[:limit]


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def hour_start(hour: str) -> datetime:
    """'2026-11-28T16' (a UTC hour bucket from the store) -> its start as an aware datetime."""
    return datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC)


def daily_series(
    rows: Iterable[SpendByHour], zone: ZoneInfo, until: datetime | None = None
) -> dict[str, dict[date, int]]:
    """Hourly spend -> per group value, spend per local day.

    Hours are attributed to the local day they start in (zones with half-hour offsets round to the hour).
    With `until`, only hours starting before it count.
    """
    out: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        start = hour_start(row.hour)
        if until is not None and start >= until:
            continue
        out[str(row.value) if row.value is not None else "(none)"][local_day(start, zone)] += row.cost_nanos
    return {group: dict(days) for group, days in out.items()}


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)
