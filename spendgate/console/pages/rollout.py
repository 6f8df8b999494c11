"""Rollout (/ui/rollout): per team, days of history against the 60 days of observation, budgets now
and recommended; coverage of the provider's bill. Org-wide roles see every team, a lead theirs."""

from __future__ import annotations

from spendgate.console.context import Ctx, Page
from spendgate.rollout import status


def show(ctx: Ctx) -> Page:
    roles = ctx.viewer.roles
    ctx.require(roles.sees_org or bool(roles.lead_of), "see the rollout")
    data = status(ctx.store, ctx.now, ctx.settings.gateway_provider_key_ids)
    data["teams"] = [t for t in data["teams"] if roles.sees_team(t["team_id"])]
    return Page("rollout.html", data, "Rollout")
