"""Budgets as data: scope, amount, period (in a time zone) and tiers.

The rows themselves (`Budget`, `Tier`, `Exemption`, `BudgetEvent`) are the store's
(`store/budgets.py`) and are re-exported here; this module adds their periods (`window_for`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from spendgate.clock import iso
from spendgate.store.budgets import (
    DEFAULT_TIERS,
    HARD,
    PERIODS,
    SCOPE_TYPES,
    Budget,
    BudgetEvent,
    Exemption,
    Tier,
)

__all__ = [
    "DEFAULT_TIERS",
    "HARD",
    "PERIODS",
    "SCOPE_TYPES",
    "Budget",
    "BudgetEvent",
    "Exemption",
    "Tier",
    "Window",
    "window_for",
]


# How tiers are written on the command line and in the admin API.
TIERS_HELP = "name=percent[:action], comma-separated, e.g. alert=80,amber=110:downgrade:fast,hard=150"


@dataclass(frozen=True, slots=True)
class Window:
    key: str  # names the period, e.g. 2026-11 / 2026-W48 / 2026-11-28 / fixed
    start: datetime
    end: datetime

    @property
    def start_iso(self) -> str:
        return iso(self.start)

    @property
    def end_iso(self) -> str:
        return iso(self.end)


def window_for(budget: Budget, now: datetime) -> Window | None:
    """The budget's current period; None for a fixed window we are outside of.

    Boundaries are local midnights in the budget's time zone, so spend rolls over by itself.
    """
    if budget.period == "fixed":
        assert budget.window_start and budget.window_end
        start = _parse(budget.window_start)
        end = _parse(budget.window_end)
        return Window("fixed", start, end) if start <= now < end else None
    zone = ZoneInfo(budget.timezone)
    local = now.astimezone(zone)
    if budget.period == "day":
        start_local = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end_local = _midnight(start_local.date() + timedelta(days=1), zone)
        key = start_local.strftime("%Y-%m-%d")
    elif budget.period == "week":
        monday = local.date() - timedelta(days=local.weekday())
        start_local = _midnight(monday, zone)
        end_local = _midnight(monday + timedelta(days=7), zone)
        year, week, _ = monday.isocalendar()
        key = f"{year}-W{week:02d}"
    else:  # month
        first = local.date().replace(day=1)
        start_local = _midnight(first, zone)
        next_first = (first + timedelta(days=32)).replace(day=1)
        end_local = _midnight(next_first, zone)
        key = first.strftime("%Y-%m")
    return Window(key, start_local.astimezone(UTC), end_local.astimezone(UTC))


def _midnight(day: object, zone: ZoneInfo) -> datetime:
    from datetime import date

    assert isinstance(day, date)
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
