"""Budgets as a console page shows them: this period's spend, percent used, tier, reset time and
where the period is heading (`projection.outlook`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from spendgate.admin.budget_service import BudgetSpend, budget_status
from spendgate.budgets.model import Budget
from spendgate.console.projection import outlook
from spendgate.console.usage import nanos
from spendgate.pricing import format_usd


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def budget_lines(store: BudgetSpend, budgets: Sequence[Budget], now: datetime) -> list[dict[str, Any]]:
    if not budgets:
        return []
    out = []
    by_id = {b.id: b for b in budgets}
    for row in budget_status(store, now=now, budgets=budgets):
        budget = by_id[row["id"]]
        line = {
            k: row[k]
            for k in (
                "id",
                "name",
                "scope",
                "period",
                "mode",
                "status",
                "amount_usd",
                "hard_limit_usd",
                "spent_usd",
                "percent_used",
                "tier_reached",
                "period_start",
                "reset_at",
                "note",
                "timezone",
            )
        }
        line["tiers"] = [{"name": t.name, "percent": t.percent} for t in budget.tiers]
        if row["status"] == "active" and row["reset_at"]:
            spent = nanos(row["spent_usd"])
            seen = outlook(
                spent,
                budget.limit_nanos(),
                parse_time(row["period_start"]),
                parse_time(row["reset_at"]),
                now,
                budget.timezone,
            )
            line["projected_usd"] = format_usd(seen.projected_nanos)
            line["outlook"] = seen.verdict
            line["hard_stop_at"] = seen.hard_stop_at.isoformat() if seen.hard_stop_at else None
        else:
            line["projected_usd"] = None
            line["outlook"] = row["status"]
            line["hard_stop_at"] = None
        out.append(line)
    return out
