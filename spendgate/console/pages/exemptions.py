"""Exemptions (/ui/exemptions): a lead asks for extra headroom on one of their team's budgets for a
window and a use case, with a reason; an approver (or admin) approves or denies it with a note, never
their own request; both are told on the configured channels; and each exemption shows what ran under
it (spend by use case, key and session inside its window). Every step is in the audit log."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any, Protocol

from spendgate.admin import budget_service
from spendgate.alerts.channels import AlertMessage
from spendgate.alerts.config import Channel
from spendgate.alerts.people import Outgoing
from spendgate.audit import record
from spendgate.budgets.model import Budget, Exemption
from spendgate.clock import iso
from spendgate.console.context import Ctx, Forbidden, Page
from spendgate.console.usage import nanos
from spendgate.dimensions import SCOPE_BY
from spendgate.pricing import format_usd
from spendgate.roles import Roles
from spendgate.store.base import NotFound
from spendgate.store.budgets import BudgetStore
from spendgate.store.people import PeopleStore
from spendgate.store.principals import PrincipalStore

log = logging.getLogger(__name__)


class ExemptionSource(BudgetStore, PrincipalStore, PeopleStore, Protocol):
    """What an exemption's page reads: its budget, the people and keys in scope, the spend."""


def team_of(store: PrincipalStore, budget: Budget) -> str | None:
    """The team a budget belongs to: its scope, or the team of the user or key it limits."""
    if budget.scope_type == "team":
        return budget.scope_value
    if budget.scope_type == "user":
        return next((u.team_id for u in store.list_users(True) if u.id == budget.scope_value), None)
    if budget.scope_type == "key":
        return next((k.team_id for k in store.list_keys(True) if k.id == budget.scope_value), None)
    return None


def visible(roles: Roles, team_id: str | None) -> bool:
    return roles.sees_org or (team_id is not None and team_id in roles.lead_of)


def _budgets(store: BudgetStore) -> dict[str, Budget]:
    return {b.id: b for b in store.list_budgets(include_revoked=True)}


def listing(ctx: Ctx) -> dict[str, Any]:
    store, roles, now = ctx.store, ctx.viewer.roles, iso(ctx.now)
    budgets = _budgets(store)
    teams = {b.id: team_of(store, b) for b in budgets.values()}
    names = {t.id: t.name for t in store.list_teams(include_revoked=True)}
    rows = []
    for e in store.list_exemptions():
        team_id = teams.get(e.budget_id)
        if visible(roles, team_id):
            view = budget_service.exemption_view(e, budgets.get(e.budget_id), now)
            view["team"] = names.get(team_id or "", team_id)
            view["can_decide"] = can_decide(ctx, e)
            rows.append(view)
    rows.sort(key=lambda r: (r["status"] != "pending", r["requested_at"]), reverse=False)
    requestable = [
        {
            "id": b.id,
            "name": b.name,
            "scope": budget_service.scope_label(b.scope_type, b.scope_value, names),
            "amount_usd": format_usd(b.amount_nanos),
        }
        for b in budgets.values()
        if not b.revoked_at and roles.requests_exemptions_for(teams.get(b.id))
    ]
    return {"exemptions": rows, "requestable_budgets": requestable, "decides": roles.decides_exemptions}


def can_decide(ctx: Ctx, exemption: Exemption) -> bool:
    return (
        ctx.viewer.roles.decides_exemptions
        and exemption.status == "pending"
        and exemption.requested_by.lower() != ctx.viewer.email.lower()
    )


def show(ctx: Ctx) -> Page:
    ctx.require(ctx.viewer.roles.sees_org or bool(ctx.viewer.roles.lead_of), "see exemptions")
    return Page("exemptions.html", listing(ctx), "Exemptions")


def request(ctx: Ctx) -> Page:
    store, form = ctx.store, ctx.form
    budget = store.get_budget(form.get("budget", ""))
    team_id = team_of(store, budget)
    ctx.require(ctx.viewer.roles.requests_exemptions_for(team_id), f"request an exemption on {budget.name}")
    hours = form.get("hours", "").strip()
    exemption = budget_service.request_exemption(
        store,
        budget=budget.id,
        amount_usd=form.get("amount", "").strip() or None,
        percent=int(form["percent"]) if form.get("percent", "").strip() else None,
        hours=float(hours) if hours else None,
        start=form.get("start", "").strip() or None,
        end=form.get("end", "").strip() or None,
        use_case=form.get("use_case", "").strip() or None,
        reason=form.get("reason", "").strip() or _missing("reason"),
        requested_by=ctx.viewer.email,
        now=ctx.now,
    )
    record(
        store,
        ctx.viewer.actor,
        "exemption.request",
        f"{exemption.id} ({budget.name})",
        team_id,
        id=exemption.id,
        reason=exemption.reason,
        use_case=exemption.use_case,
    )
    notify(ctx, exemption, budget, "requested")
    data = listing(ctx)
    data["created"] = exemption.id
    return Page("exemptions.html", data, "Exemptions", 201)


def _missing(what: str) -> str:
    raise ValueError(f"say why: the {what} goes in the audit trail")


def detail_data(
    store: ExemptionSource, exemption: Exemption, budget: Budget | None, now: datetime
) -> dict[str, Any]:
    """The exemption and what ran under it: calls in its budget's scope inside its window."""
    view = budget_service.exemption_view(exemption, budget, iso(now))
    ran: list[dict[str, Any]] = []
    end = min(exemption.ends_at, iso(now))
    column = SCOPE_BY[budget.scope_type].column if budget and budget.scope_type in SCOPE_BY else None
    if budget is not None and column and exemption.starts_at < end and exemption.status == "approved":
        rows = store.window_spend(column, budget.scope_value, exemption.starts_at, end)
        if exemption.use_case:
            rows = [r for r in rows if r["use_case"] == exemption.use_case]
        keys = {k.id: k.name for k in store.list_keys(include_revoked=True)}
        ran = [
            {
                "use_case": r["use_case"],
                "key": keys.get(r["key_id"], r["key_id"]),
                "session_id": r["session_id"],
                "requests": int(r["requests"]),
                "cost_usd": format_usd(int(r["cost_nanos"] or 0)),
            }
            for r in rows
        ]
    return {
        "exemption": view,
        "window_over": exemption.ends_at <= iso(now),
        "ran_under_it": ran,
        "ran_total_usd": format_usd(sum(nanos(r["cost_usd"]) for r in ran)),
    }


def _find(store: BudgetStore, exemption_id: str) -> Exemption:
    found = next((e for e in store.list_exemptions() if e.id == exemption_id), None)
    if found is None:
        raise NotFound(f"no exemption {exemption_id!r}")
    return found


def detail(ctx: Ctx) -> Page:
    exemption = _find(ctx.store, ctx.request.path_params["exemption_id"])
    budget = ctx.store.get_budget(exemption.budget_id)
    ctx.require(visible(ctx.viewer.roles, team_of(ctx.store, budget)), f"see exemption {exemption.id}")
    data = detail_data(ctx.store, exemption, budget, ctx.now)
    data["can_decide"] = can_decide(ctx, exemption)
    return Page("exemption.html", data, f"Exemption {exemption.id}")


def decide(ctx: Ctx) -> Page:
    store = ctx.store
    exemption = _find(store, ctx.request.path_params["exemption_id"])
    budget = store.get_budget(exemption.budget_id)
    team_id = team_of(store, budget)
    ctx.require(
        ctx.viewer.roles.decides_exemptions and visible(ctx.viewer.roles, team_id), "decide exemptions"
    )
    if exemption.requested_by.lower() == ctx.viewer.email.lower():
        raise Forbidden("you asked for this exemption: someone else must decide it")
    action = ctx.form.get("action", "")
    if action not in ("approve", "deny"):
        raise ValueError("decide with approve or deny")
    decided = budget_service.decide_exemption(
        store,
        exemption.id,
        approve=action == "approve",
        by=ctx.viewer.email,
        note=ctx.form.get("note", "").strip(),
    )
    ctx.gw.budgets.reload()  # the headroom applies in this process at once
    record(
        store,
        ctx.viewer.actor,
        f"exemption.{action}",
        f"{decided.id} ({budget.name})",
        team_id,
        id=decided.id,
        note=decided.decision_note,
        requested_by=decided.requested_by,
    )
    notify(ctx, decided, budget, "approved" if action == "approve" else "denied")
    data = detail_data(store, decided, budget, ctx.now)
    data["can_decide"] = False
    return Page("exemption.html", data, f"Exemption {decided.id}")


# --- notifications ---
def notify(ctx: Ctx, exemption: Exemption, budget: Budget, what: str) -> None:
    """Tell the requester and the approvers, on the alerts file's channels (best effort: a channel
    that is down never undoes a decision)."""
    settings = ctx.settings
    if settings.alerts_file is None:
        return
    from spendgate.alerts.config import load_alerts_config
    from spendgate.alerts.people import reach

    store = ctx.store
    config = load_alerts_config(settings.alerts_file)
    people = [u for u in store.list_users() if (u.email or "").lower() == exemption.requested_by.lower()]
    approvers = {g.user_id for g in store.list_role_grants(role="approver")}
    people += [u for u in store.list_users() if u.id in approvers]
    base = (settings.ui_public_url or str(ctx.request.base_url)).rstrip("/")
    extra = format_usd(exemption.headroom_nanos(budget))
    title = f"Exemption {what}: +${extra} on {budget.name}"
    lines = (
        f"Requested by {exemption.requested_by}: {exemption.reason}",
        f"Window {exemption.starts_at} to {exemption.ends_at}"
        + (f", use case {exemption.use_case}" if exemption.use_case else ""),
        *(
            (
                f"Decided by {exemption.decided_by}"
                + (f": {exemption.decision_note}" if exemption.decision_note else ""),
            )
            if exemption.decided_by
            else ()
        ),
    )
    msg = AlertMessage(
        alert_id=exemption.id,
        kind="exemption",
        action="trigger",
        title=title,
        summary=f"{title} ({base}/ui/exemptions/{exemption.id})",
        dedup_key=f"exemption:{exemption.id}:{what}",
        severity="info",
        group=f"budget:{budget.name}",
        lines=lines,
        details={"exemption": exemption.id, "budget": budget.name, "status": exemption.status},
        at=iso(ctx.now),
    )
    outgoing = reach(config, msg, people)
    routed = config.routes.get("exemptions", ())
    if routed:
        outgoing.append((msg, [config.channels[name] for name in routed]))
    if outgoing:
        asyncio.run(_deliver(outgoing))


async def _deliver(outgoing: list[Outgoing]) -> None:
    """One attempt per channel, in parallel, at most 10 s: the person acting is waiting on the page.
    (Alert deliveries retry for minutes; a missed exemption notice is still on the console.)"""
    import aiohttp

    from spendgate.alerts.channels import DeliveryError, send

    async def one(session: aiohttp.ClientSession, msg: AlertMessage, channel: Channel) -> None:
        try:
            await send(channel, msg, session, 10.0)
        except (DeliveryError, OSError, TimeoutError) as exc:
            log.warning("exemption notice to %s failed: %s", channel.name, exc)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session, msg, ch) for msg, chans in outgoing for ch in chans))
