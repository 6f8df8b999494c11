"""Team (/ui/teams/{team}): what a lead plans with. Spend trend, by user, use case and model;
budgets with tiers and where they are heading; the month-end forecast; alerts and their cause;
cost per merged PR by month; the team's exemptions. Leads of the team, and the org-wide roles."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from spendgate.admin.budget_service import BudgetSpend, exemption_view
from spendgate.budgets.model import Budget
from spendgate.clock import iso
from spendgate.console.budgetview import budget_lines
from spendgate.console.context import Ctx, Page
from spendgate.console.usage import breakdown, daily, month_start, nanos
from spendgate.finance import cost_per_pr as cpp
from spendgate.finance import forecast as fc
from spendgate.models import Team
from spendgate.pricing import format_usd
from spendgate.roles import PeopleReader, find_team, team_leads
from spendgate.store.alerts import AlertStore
from spendgate.store.budgets import BudgetStore
from spendgate.store.finance import FinanceStore
from spendgate.store.principals import PrincipalStore
from spendgate.store.spend import SpendStore

TREND_MONTHS = 6


class TeamBudgets(BudgetStore, PrincipalStore, Protocol):
    """Budgets and the team's users and keys they may be scoped to."""


class TeamSource(TeamBudgets, BudgetSpend, AlertStore, FinanceStore, PeopleReader, Protocol):
    """What the team page reads: spend, budgets, exemptions, alerts, merged PRs and leads."""


def team_budgets(store: TeamBudgets, team: Team) -> list[Budget]:
    """Budgets on the team itself and on its members and keys."""
    members = {u.id for u in store.list_users() if u.team_id == team.id}
    keys = {k.id for k in store.list_keys() if k.team_id == team.id}
    return [
        b
        for b in store.list_budgets()
        if (b.scope_type == "team" and b.scope_value == team.id)
        or (b.scope_type == "user" and b.scope_value in members)
        or (b.scope_type == "key" and b.scope_value in keys)
    ]


def team_alerts(store: AlertStore, team: Team, since: datetime) -> list[dict[str, Any]]:
    """Anomaly, budget and forecast alerts about the team since `since`, newest first, with the
    cause the detector found (its top contributor)."""
    out = []
    for a in store.list_alerts(since=iso(since)):
        details = a.details
        about_team = a.group_by == "team" and a.group_value in (team.id, team.name)
        # Budget and forecast alerts are grouped by budget; their scope names the team.
        scope = str(details.get("scope", ""))
        if not about_team and scope not in (f"team {team.name}", f"team {team.id}"):
            continue
        top = details.get("top_contributor")
        cause = f"{top['dimension']} {top['value']}" if isinstance(top, dict) else None
        out.append(
            {
                "id": a.id,
                "kind": a.kind,
                "opened_at": a.opened_at,
                "status": a.status,
                "summary": a.summary,
                "cause": cause,
                "lines": [str(line) for line in details.get("lines", [])][:6],
            }
        )
    return sorted(out, key=lambda a: a["opened_at"], reverse=True)


def team_forecast(store: SpendStore, team: Team, budgets: list[Budget], now: datetime) -> dict[str, Any]:
    start = month_start(now)
    end = (start + timedelta(days=32)).replace(day=1)
    mtd = store.spend_totals("team", iso(start), iso(now), ("team", team.id))
    rate_start, rate_end = fc.run_rate_window(now)
    recent = store.spend_totals("team", iso(rate_start), iso(rate_end), ("team", team.id))
    monthly = fc.monthly_budgets(budgets, "team")
    rows = fc.forecast(
        {team.id: mtd.get(team.id, 0)},
        {team.id: recent.get(team.id, 0)},
        {k: v for k, v in monthly.items() if k == team.id},
        {team.id: team.name},
        fc.days_left(now, end),
    )
    return fc.as_dict(rows[0], "team", format_usd)


def team_data(store: TeamSource, team: Team, now: datetime) -> dict[str, Any]:
    since = month_start(now)
    names = {u.id: u.name for u in store.list_users(include_revoked=True)}
    figures = breakdown(store, since, now, {"team_id": team.id}, by_user=True, names=names)
    budgets = team_budgets(store, team)
    months = cpp.month_window(TREND_MONTHS, now.strftime("%Y-%m"))
    # One daily series over the trend window gives the chart and each month's spend for cost per PR.
    trend = daily(store, datetime.fromisoformat(f"{months[0]}-01T00:00:00+00:00"), now, {"team_id": team.id})
    monthly: dict[tuple[str, str], int] = {}
    for day in trend:
        key = (team.name, day["day"][:7])
        monthly[key] = monthly.get(key, 0) + nanos(day["cost_usd"])
    first, end = cpp.window_bounds(months)
    prs = [p for p in store.merged_pull_requests(first, end) if p["team_id"] == team.id]
    per_pr = cpp.cost_per_pr(monthly, cpp.count_prs(prs, "team_id", {team.id: team.name}), months)
    budget_ids = {b.id for b in budgets}
    all_budgets = {b.id: b for b in store.list_budgets(include_revoked=True)}
    exemptions = [
        exemption_view(e, all_budgets.get(e.budget_id), iso(now))
        for e in store.list_exemptions()
        if e.budget_id in budget_ids
    ]
    return {
        "team": {"id": team.id, "name": team.name, "cost_center": team.cost_center},
        "leads": [u.email or u.name for u in team_leads(store, team.id)],
        "month": since.strftime("%Y-%m"),
        "month_to_date_usd": figures["spend_usd"],
        "requests": figures["requests"],
        "daily": trend[-92:],  # the chart: the last three months by day
        "by_user": figures["by_user"],
        "by_use_case": figures["by_use_case"],
        "by_model": figures["by_model"],
        "budgets": budget_lines(store, budgets, now),
        "forecast": team_forecast(store, team, budgets, now),
        "alerts": team_alerts(store, team, since - timedelta(days=30)),
        "cost_per_pr": [r.view("team") for r in per_pr if r.group == team.name],
        "exemptions": exemptions,
    }


def show(ctx: Ctx) -> Page:
    team = find_team(ctx.store, ctx.request.path_params["team"])
    ctx.require(ctx.viewer.roles.sees_team(team.id), f"see team {team.name}")
    return Page("team.html", team_data(ctx.store, team, ctx.now), f"Team {team.name}")
