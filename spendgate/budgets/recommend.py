"""Budget recommendations from history: a monthly baseline per team or use case, with headroom.

`recommend` is pure arithmetic over daily spend rows (no database), so every number can be
checked by hand; `apply` creates the proposed budgets.

- the window is the last N whole UTC days; a group is *observed* from its first day with spend
  to the end of the window, so a team that started last week is not diluted by the weeks before
  it existed, while quiet days after it started (weekends) still count as zero;
- average per day = total / observed days; the p95 day uses the nearest-rank method over the
  observed days (quiet days included);
- monthly baseline = average per day x 30.4, rounded to the cent; the proposed budget amount is
  the baseline, with tiers alert 80%, amber (the soft limit) 140% and hard 200%.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from spendgate.budgets.model import HARD, Tier
from spendgate.pricing import format_usd

if TYPE_CHECKING:
    from spendgate.store.budgets import BudgetStore

DAYS_PER_MONTH = Fraction(304, 10)
CENT_NANOS = 10_000_000
# Soft limit in the 130-150% band, hard limit at twice the baseline.
RECOMMENDED_TIERS = (Tier("alert", 80), Tier("amber", 140), Tier(HARD, 200))
NAME_PREFIX = "rec-"


@dataclass(frozen=True, slots=True)
class DailySpend:
    group: str  # "team" or "use_case"
    key: str  # the team id, or the use case
    name: str  # what people call it (the team's name)
    day: date
    nanos: int


@dataclass(frozen=True, slots=True)
class Recommendation:
    group: str
    key: str
    name: str
    window_days: int
    first_day: date  # first day with spend in the window
    days_observed: int
    days_with_data: int
    total_nanos: int
    avg_day_nanos: int
    p95_day_nanos: int
    max_day_nanos: int
    baseline_nanos: int  # the proposed monthly budget amount

    @property
    def budget_name(self) -> str:
        return f"{NAME_PREFIX}{self.name}"

    def view(self) -> dict[str, Any]:
        """Each number with the data behind it, money as exact decimal dollars."""
        baseline, total = format_usd(self.baseline_nanos), format_usd(self.total_nanos)
        return {
            "group": self.group,
            "name": self.name,
            "id": self.key,
            "budget_name": self.budget_name,
            "window_days": self.window_days,
            "first_day": self.first_day.isoformat(),
            "days_observed": self.days_observed,
            "days_with_data": self.days_with_data,
            "total_usd": total,
            "avg_day_usd": format_usd(self.avg_day_nanos),
            "p95_day_usd": format_usd(self.p95_day_nanos),
            "max_day_usd": format_usd(self.max_day_nanos),
            "baseline_usd": baseline,
            "baseline_basis": f"{total} / {self.days_observed} days x 30.4 = {baseline}",
            "alert_usd": format_usd(self.tier_nanos("alert")),
            "soft_usd": format_usd(self.tier_nanos("amber")),
            "hard_usd": format_usd(self.tier_nanos(HARD)),
            "tiers": tiers_text(RECOMMENDED_TIERS),
        }

    def tier_nanos(self, tier: str) -> int:
        """The spend at which a tier fires, computed exactly as the enforcer does."""
        percent = next(t.percent for t in RECOMMENDED_TIERS if t.name == tier)
        return self.baseline_nanos * percent // 100


def recommend(
    rows: Iterable[DailySpend], *, window_start: date, days: int, min_baseline_nanos: int = 0
) -> list[Recommendation]:
    """One recommendation per (group, key) with spend in [window_start, window_start + days).

    Groups whose baseline is below `min_baseline_nanos` are left out (not worth a budget).
    Sorted by baseline, largest first.
    """
    if days < 1:
        raise ValueError("the history must cover at least 1 day")
    window_end = window_start + timedelta(days=days)
    per_day: dict[tuple[str, str], dict[date, int]] = defaultdict(lambda: defaultdict(int))
    names: dict[tuple[str, str], str] = {}
    for row in rows:
        if not window_start <= row.day < window_end:
            continue
        per_day[(row.group, row.key)][row.day] += row.nanos
        names[(row.group, row.key)] = row.name
    out = []
    for (group, key), spend in per_day.items():
        spent_days = sorted(day for day, nanos in spend.items() if nanos > 0)
        if not spent_days:
            continue
        first = spent_days[0]
        observed = (window_end - first).days
        daily = sorted(spend.get(first + timedelta(days=i), 0) for i in range(observed))
        total = sum(daily)
        baseline = _round(Fraction(total) * DAYS_PER_MONTH / observed, CENT_NANOS)
        if baseline < min_baseline_nanos or baseline <= 0:
            continue
        out.append(
            Recommendation(
                group=group,
                key=key,
                name=names[(group, key)],
                window_days=days,
                first_day=first,
                days_observed=observed,
                days_with_data=len(spent_days),
                total_nanos=total,
                avg_day_nanos=_round(Fraction(total, observed), 1),
                p95_day_nanos=daily[-(-95 * observed // 100) - 1],  # nearest rank: ceil(0.95 n)
                max_day_nanos=daily[-1],
                baseline_nanos=baseline,
            )
        )
    out.sort(key=lambda r: (-r.baseline_nanos, r.group, r.name))
    return out


def apply(
    store: BudgetStore, recs: Sequence[Recommendation], *, enforce: bool = False
) -> list[dict[str, Any]]:
    """Create the proposed budgets (observe mode unless `enforce`), skipping names in use."""
    taken = {b.name for b in store.list_budgets(include_revoked=True)}  # names stay taken when revoked
    out = []
    for rec in recs:
        if rec.budget_name in taken:
            out.append({**rec.view(), "action": "skipped: name exists", "budget_id": None})
            continue
        budget = store.create_budget(
            name=rec.budget_name,
            scope_type=rec.group,
            scope_value=rec.key,
            amount_nanos=rec.baseline_nanos,
            tiers=RECOMMENDED_TIERS,
            mode="enforce" if enforce else "observe",
        )
        taken.add(rec.budget_name)
        out.append({**rec.view(), "action": f"created ({budget.mode})", "budget_id": budget.id})
    return out


def tiers_text(tiers: Sequence[Tier]) -> str:
    """Tiers in the command line's syntax: alert=80,amber=110:downgrade:fast,hard=150."""
    return ",".join(f"{t.name}={t.percent}" + (f":{t.action}" if t.action else "") for t in tiers)


def _round(value: Fraction, step: int) -> int:
    """Nearest multiple of `step` nanos, halves to even (exact: no float)."""
    return round(value / step) * step
