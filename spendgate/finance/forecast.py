"""Month-end spend forecast per team or cost center, against monthly budgets.

projected = month-to-date spend + run-rate x days left in the month (UTC), where the run-rate is
the average daily spend of the last 7 complete UTC days (today is partial and not counted; a group
with less history still divides by 7). Days left are fractional: from `now` to the month's end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from spendgate.budgets.model import Budget

RUN_RATE_DAYS = 7
_DAY = Fraction(86400)


@dataclass(frozen=True, slots=True)
class Projection:
    value: str | None  # team id or cost center
    name: str | None
    mtd_nanos: int
    run_rate_nanos: int  # per day, rounded
    days_left: Fraction
    projected_nanos: int
    budget_nanos: int | None = None
    budget_name: str | None = None

    @property
    def percent_of_budget(self) -> Fraction | None:
        if not self.budget_nanos:
            return None
        return Fraction(self.projected_nanos * 100, self.budget_nanos)

    @property
    def over_by_nanos(self) -> int | None:
        """How far the projection exceeds the budget (0 when within it); None without a budget."""
        if self.budget_nanos is None:
            return None
        return max(self.projected_nanos - self.budget_nanos, 0)


def project(
    mtd_nanos: int, recent_nanos: int, days_left: Fraction, run_rate_days: int = RUN_RATE_DAYS
) -> int:
    """MTD + (recent spend / run-rate days) x days left, rounded half-even to the nano-dollar."""
    return round(mtd_nanos + Fraction(recent_nanos, run_rate_days) * days_left)


def days_left(now: datetime, month_end: datetime) -> Fraction:
    seconds = max((month_end - now).total_seconds(), 0)
    return Fraction(int(seconds)) / _DAY


def run_rate_window(now: datetime, run_rate_days: int = RUN_RATE_DAYS) -> tuple[datetime, datetime]:
    """The last N complete UTC days before `now`: [midnight - N days, midnight)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=run_rate_days), midnight


def monthly_budgets(budgets: Iterable[Budget], scope_type: str) -> dict[str, Budget]:
    """The tightest live monthly budget per scope value of one scope type."""
    out: dict[str, Budget] = {}
    for budget in budgets:
        if budget.scope_type != scope_type or budget.period != "month" or budget.revoked_at:
            continue
        known = out.get(budget.scope_value)
        if known is None or budget.amount_nanos < known.amount_nanos:
            out[budget.scope_value] = budget
    return out


def forecast(
    mtd: Mapping[str | None, int],
    recent: Mapping[str | None, int],
    budgets: Mapping[str, Budget],
    names: Mapping[str, str],
    left: Fraction,
    run_rate_days: int = RUN_RATE_DAYS,
) -> list[Projection]:
    """One projection per group with spend this month, spend in the run-rate window, or a budget;
    largest projection first."""
    values = set(mtd) | set(recent) | set(budgets)
    out = []
    for value in values:
        spent, recent_spend = mtd.get(value, 0), recent.get(value, 0)
        budget = budgets.get(value) if value is not None else None
        out.append(
            Projection(
                value=value,
                name=names.get(value, value) if value is not None else None,
                mtd_nanos=spent,
                run_rate_nanos=round(Fraction(recent_spend, run_rate_days)),
                days_left=left,
                projected_nanos=project(spent, recent_spend, left, run_rate_days),
                budget_nanos=budget.amount_nanos if budget else None,
                budget_name=budget.name if budget else None,
            )
        )
    out.sort(key=lambda p: (-p.projected_nanos, str(p.value)))
    return out


def as_dict(p: Projection, by: str, usd: Any) -> dict[str, Any]:
    """JSON-ready: money as exact USD strings via `usd` (pricing.format_usd)."""
    percent = p.percent_of_budget
    over = p.over_by_nanos
    return {
        by: p.name,
        "id": p.value,
        "mtd_usd": usd(p.mtd_nanos),
        "run_rate_usd_per_day": usd(p.run_rate_nanos),
        "days_left": float(round(p.days_left, 4)),
        "projected_usd": usd(p.projected_nanos),
        "budget": p.budget_name,
        "budget_usd": None if p.budget_nanos is None else usd(p.budget_nanos),
        "projected_percent_of_budget": None if percent is None else float(round(percent, 1)),
        "over_by_usd": None if over is None else usd(over),
    }
