"""My usage (/ui/me): an engineer's month to date, the budgets that apply to them and where each is
heading, spend by day, use case, model and Claude Code session, and their keys (create, shown once;
revoke). Every signed-in user has this page, about themselves only."""

from __future__ import annotations

from typing import Any

from spendgate.admin.service import create_key as mint_key
from spendgate.admin.service import key_view
from spendgate.audit import record
from spendgate.budgets.model import Budget, window_for
from spendgate.clock import iso
from spendgate.console.budgetview import budget_lines
from spendgate.console.context import Ctx, Page
from spendgate.console.usage import breakdown, daily, month_start
from spendgate.models import ApiKey, Team, User
from spendgate.pricing import format_usd
from spendgate.store.base import NotFound
from spendgate.store.people import PeopleStore
from spendgate.store.principals import PrincipalStore

SESSIONS_SHOWN = 20


def applies_to(budget: Budget, user: User, team: Team, key_ids: set[str]) -> bool:
    """Budgets that can stop this user's calls."""
    scope, value = budget.scope_type, budget.scope_value
    return (
        (scope == "user" and value == user.id)
        or (scope == "key" and value in key_ids)
        or (scope == "team" and value == team.id)
        or (scope == "org" and value == team.org_id)
        or (scope == "cost_center" and value == team.cost_center)
        or scope in ("use_case", "tag")  # org-wide caps on calls carrying a use case or tag
    )


def my_keys(store: PrincipalStore, user: User) -> list[ApiKey]:
    return [k for k in store.list_keys(include_revoked=True) if k.user_id == user.id]


def usage(ctx: Ctx) -> dict[str, Any]:
    store, user, now = ctx.store, ctx.viewer.user, ctx.now
    team = next(t for t in store.list_teams(include_revoked=True) if t.id == user.team_id)
    keys = my_keys(store, user)
    key_ids = {k.id for k in keys}
    since = month_start(now)
    figures = breakdown(store, since, now, {"user_id": user.id})
    live = [b for b in store.list_budgets() if applies_to(b, user, team, key_ids)]
    per_session = [b for b in live if b.scope_type == "session"]
    sessions = store.session_spend(sorted(key_ids), iso(since), iso(now))
    return {
        "user": {
            "id": user.id,
            "name": user.name,
            "email": user.email,
            "team": team.name,
            "team_id": team.id,
        },
        "month": since.strftime("%Y-%m"),
        "since": iso(since),
        "until": iso(now),
        "month_to_date_usd": figures["spend_usd"],
        "requests": figures["requests"],
        "budgets": budget_lines(store, [b for b in live if b.scope_type != "session"], now)
        + _session_budgets(store, per_session, sorted(key_ids), now),
        "daily": daily(store, since, now, {"user_id": user.id}),
        "by_use_case": figures["by_use_case"],
        "by_model": figures["by_model"],
        "sessions": [
            {
                "session_id": s["session_id"],
                "requests": s["requests"],
                "cost_usd": format_usd(s["cost_nanos"]),
                "first_at": s["first_at"],
                "last_at": s["last_at"],
            }
            for s in sessions[:SESSIONS_SHOWN]
        ],
        "keys": [_key(k) for k in keys],
    }


def _session_budgets(
    store: PeopleStore, budgets: list[Budget], key_ids: list[str], now: Any
) -> list[dict[str, Any]]:
    """A per-session cap, as it stands for my busiest session in its period."""
    out = []
    for budget in budgets:
        window = window_for(budget, now)
        if window is None:
            continue
        mine = store.session_spend(key_ids, window.start_iso, window.end_iso)
        if budget.scope_value != "*":
            mine = [s for s in mine if s["session_id"] == budget.scope_value]
        top = max(mine, key=lambda s: s["cost_nanos"], default=None)
        spent = int(top["cost_nanos"]) if top else 0
        crossed = [t for t in budget.tiers if spent >= budget.amount_nanos * t.percent // 100]
        reached = max(crossed, key=lambda t: t.percent) if crossed else None
        out.append(
            {
                "id": budget.id,
                "name": budget.name,
                "scope": f"session:{budget.scope_value}",
                "period": budget.period,
                "mode": budget.mode,
                "status": "active",
                "amount_usd": format_usd(budget.amount_nanos),
                "hard_limit_usd": format_usd(budget.limit_nanos()),
                "spent_usd": format_usd(spent),
                "percent_used": round(spent * 100 / budget.amount_nanos, 1),
                "tier_reached": reached.name if reached else None,
                "period_start": window.start_iso,
                "reset_at": window.end_iso,
                "note": f"per session; my busiest: {top['session_id']}" if top else "per session",
                "timezone": budget.timezone,
                "tiers": [{"name": t.name, "percent": t.percent} for t in budget.tiers],
                "projected_usd": None,
                "outlook": "at the hard stop for that session"
                if spent >= budget.limit_nanos()
                else "on track",
                "hard_stop_at": None,
            }
        )
    return out


def _key(key: ApiKey) -> dict[str, Any]:
    view = key_view(key)
    return {
        k: view[k]
        for k in ("id", "name", "prefix", "default_use_case", "created_at", "expires_at", "revoked_at")
    }


def show(ctx: Ctx) -> Page:
    return Page("me.html", usage(ctx), "My usage")


def create_key(ctx: Ctx) -> Page:
    user = ctx.viewer.user
    name = ctx.form.get("name", "").strip()
    if not name:
        raise ValueError("give the key a name, e.g. laptop or ci")
    key, secret = mint_key(
        ctx.store,
        name=name,
        team=user.team_id,
        user=user.id,
        use_case=ctx.form.get("use_case", "").strip() or None,
    )
    ctx.gw.keyring.reload()  # usable on its next call, in this process at once
    record(
        ctx.store, ctx.viewer.actor, "key.create", key.name, key.team_id, key_id=key.id, prefix=key.key_prefix
    )
    data = usage(ctx)
    # The secret is in this one response only; it is never stored and never shown again.
    data["new_key"] = {**_key(key), "key": secret}
    return Page("me.html", data, "My usage", 201)


def revoke_key(ctx: Ctx) -> Page:
    key_id = ctx.request.path_params["key_id"]
    key = next((k for k in my_keys(ctx.store, ctx.viewer.user) if k.id == key_id), None)
    if key is None:
        raise NotFound(f"you have no key {key_id!r}")
    revoked = ctx.store.revoke_key(key.id)
    ctx.gw.keyring.forget(key.id)
    record(ctx.store, ctx.viewer.actor, "key.revoke", key.name, key.team_id, key_id=key.id)
    data = usage(ctx)
    data["revoked_key"] = _key(revoked)
    return Page("me.html", data, "My usage")
