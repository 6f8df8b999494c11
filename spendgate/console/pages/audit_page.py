"""Audit log (/ui/audit): every change made by a person, newest first, filterable by actor, action
and day; for admins, approvers and finance."""

from __future__ import annotations

from spendgate.admin.service import maybe_time
from spendgate.audit import entry_view
from spendgate.console.context import Ctx, Page

SHOWN = 500


def show(ctx: Ctx) -> Page:
    ctx.require(ctx.viewer.roles.sees_audit, "read the audit log")
    q = ctx.request.query_params
    actor, action, since = q.get("actor") or None, q.get("action") or None, q.get("since") or None
    names = {t.id: t.name for t in ctx.store.list_teams(include_revoked=True)}
    entries = ctx.store.list_audit(since=maybe_time(since), actor=actor, action=action, limit=SHOWN)
    data = {
        "filters": {"actor": actor, "action": action, "since": since},
        "entries": [entry_view(e, names) for e in entries],
        "limit": SHOWN,
    }
    return Page("audit.html", data, "Audit log")
