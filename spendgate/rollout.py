"""Rollout discipline from the brief: observe for 60 days, then set soft limits at 130-150% of the
baseline and hard cutoffs at 200%. Per team: days of history, whether it has observed long enough,
its budgets now and the recommended one; for the org: coverage (the share of the provider's bill the
gateway metered, from reconciliation when provider usage has been imported).

`spendgate rollout status`, the console's /ui/rollout page and `budgets recommend` (which warns, and
whose `--apply` refuses without `--force`, when a team has fewer than 60 days) read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from spendgate.admin.budget_service import HistorySource, recommend_budgets
from spendgate.budgets.recommend import Recommendation
from spendgate.finance import reconcile as rc
from spendgate.pricing import format_usd
from spendgate.store.budgets import BudgetStore
from spendgate.store.finance import ReconcileStore
from spendgate.store.people import PeopleStore
from spendgate.store.principals import PrincipalStore

MIN_HISTORY_DAYS = 60
COVERAGE_DAYS = 30


class RolloutSource(PeopleStore, PrincipalStore, BudgetStore, HistorySource, ReconcileStore, Protocol):
    """What the rollout status reads: each team's first day of spend, budgets, history and
    reconciliation coverage."""


def history_days(first_day: str | None, today: date) -> int:
    """Whole UTC days since the first day with spend (that day included), 0 for none."""
    if not first_day:
        return 0
    return (today - date.fromisoformat(first_day)).days + 1


def short_history(store: PeopleStore, recs: Sequence[Recommendation], now: datetime) -> list[tuple[str, int]]:
    """(team name, days of history) of recommended teams with fewer than MIN_HISTORY_DAYS."""
    first = store.first_spend_day("team_id")
    today = now.date()
    out = []
    for rec in recs:
        if rec.group == "team":
            days = history_days(first.get(rec.key), today)
            if days < MIN_HISTORY_DAYS:
                out.append((rec.name, days))
    return out


def short_history_warning(short: Sequence[tuple[str, int]]) -> str:
    teams = ", ".join(f"{name} ({days} days)" for name, days in short)
    return (
        f"warning: fewer than {MIN_HISTORY_DAYS} days of history for {teams}: the brief's rule is to observe "
        f"for {MIN_HISTORY_DAYS} days before setting budgets, so these baselines may mislead"
    )


def status(store: RolloutSource, now: datetime, gateway_keys: str | None) -> dict[str, Any]:
    today = now.date()
    first = store.first_spend_day("team_id")
    recs = {
        r.key: r for r in recommend_budgets(store, days=MIN_HISTORY_DAYS, by=["team"], min_usd=0, now=now)
    }
    budgets = [b for b in store.list_budgets() if b.scope_type == "team"]
    teams = []
    for team in store.list_teams():
        days = history_days(first.get(team.id), today)
        rec = recs.get(team.id)
        own = [b for b in budgets if b.scope_value == team.id]
        teams.append(
            {
                "team_id": team.id,
                "team": team.name,
                "first_day": first.get(team.id),
                "days_of_history": days,
                "ready": days >= MIN_HISTORY_DAYS,
                "stage": "ready to set budgets"
                if days >= MIN_HISTORY_DAYS
                else ("no traffic yet" if days == 0 else f"observing ({days}/{MIN_HISTORY_DAYS} days)"),
                "budgets": [
                    {"name": b.name, "mode": b.mode, "amount_usd": format_usd(b.amount_nanos)} for b in own
                ],
                "recommended": None
                if rec is None
                else {
                    "baseline_usd": format_usd(rec.baseline_nanos),
                    "soft_usd": format_usd(rec.tier_nanos("amber")),
                    "hard_usd": format_usd(rec.tier_nanos("hard")),
                    "budget_name": rec.budget_name,
                },
            }
        )
    teams.sort(key=lambda t: (t["ready"], t["team"]))
    since = (today - timedelta(days=COVERAGE_DAYS)).isoformat()
    until = (today + timedelta(days=1)).isoformat()
    recon = rc.reconcile_days(store, since, until, gateway_keys)
    imported = any(line.billed_nanos is not None for line in recon.totals)
    return {
        "min_history_days": MIN_HISTORY_DAYS,
        "teams": teams,
        "coverage": {
            "since": since,
            "until": until,
            "imported": imported,
            "by_provider": [line.as_json() for line in recon.totals] if imported else [],
            "bypass_keys": [f"{k.provider}:{k.api_key_id}" for k in recon.bypass_keys],
        },
    }
