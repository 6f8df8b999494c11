"""Org (/ui/org): the whole organisation for a month, for admins, approvers and finance. Every team
and cost center, routing savings, cost per merged PR by team (the ROI view), reconciliation coverage
and keys that bypass the gateway, the chargeback with its FOCUS download, and the finance and
governance reports."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.responses import Response

from spendgate.clock import iso
from spendgate.console.context import Ctx, Page
from spendgate.extras import missing
from spendgate.finance import cost_per_pr as cpp
from spendgate.finance import focus
from spendgate.finance import reconcile as rc
from spendgate.pricing import Pricer, format_usd
from spendgate.store.finance import ReconcileStore
from spendgate.store.principals import PrincipalStore
from spendgate.store.reports import ReportStore
from spendgate.store.spend import SpendByGroup


class OrgSource(cpp.PRSpend, ReconcileStore, ReportStore, PrincipalStore, Protocol):
    """What the org page reads: spend and savings, cost per PR, reconciliation, the chargeback."""

_MONTH = re.compile(r"\d{4}-\d{2}")


def month_of(ctx: Ctx) -> tuple[str, datetime, datetime]:
    """The ?month=YYYY-MM asked for (default this one): (month, start, end or now)."""
    month = ctx.request.query_params.get("month") or ctx.now.strftime("%Y-%m")
    if not _MONTH.fullmatch(month):
        raise ValueError(f"month must look like 2026-11, got {month!r}")
    start, end = focus.month_bounds(month)
    if start > ctx.now:
        raise ValueError(f"{month} has not started yet")
    return month, start, min(end, ctx.now)


def _slices(rows: list[SpendByGroup], label: str) -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            label: r.name if r.name is not None else "(none)",
            "requests": r.requests,
            "cost_usd": format_usd(r.cost_nanos),
        }
        for r in rows
    ]


def org_data(
    store: OrgSource, month: str, start: datetime, until: datetime, gateway_keys: str | None
) -> dict[str, Any]:
    since_s, until_s = iso(start), iso(until)
    team_rows = store.spend("team", since_s, until_s)
    teams = _slices(team_rows, "team")
    total = sum(r.cost_nanos for r in team_rows)
    savings_rows = store.savings("rule", since_s, until_s)
    cost = sum(r.cost_nanos for r in savings_rows)
    asked = sum(r.counterfactual_nanos for r in savings_rows)
    per_pr = cpp.report(store, "team", [month])
    spent_by_team = {t["team"]: t for t in teams}
    day_since, day_until = start.date().isoformat(), until.date().isoformat()
    if until.time() != datetime.min.time() or day_until == day_since:
        from datetime import timedelta

        day_until = (until.date() + timedelta(days=1)).isoformat()
    recon = rc.reconcile_days(store, day_since, day_until, gateway_keys)
    # The chargeback's summary needs only sums per cost center, team and use case: the team rollup
    # answers that (chargeback_rows carries every FOCUS column, for the CSV download).
    names = {t.id: t.name for t in store.list_teams(include_revoked=True)}
    sums = store.sum_grouped(
        ["cost_center", "team_id", "use_case"], ["requests", "cost_nanos"], since_s, until_s
    )
    tree = focus.summarize({**r, "team_name": names.get(r["team_id"], r["team_id"])} for r in sums)
    return {
        "month": month,
        "since": since_s,
        "until": until_s,
        "total_usd": format_usd(total),
        "teams": teams,
        "cost_centers": _slices(store.spend("cost_center", since_s, until_s), "cost_center"),
        "savings": {
            "cost_usd": format_usd(cost),
            "as_asked_usd": format_usd(asked),
            "saved_usd": format_usd(asked - cost),
            "by_rule": [
                {
                    "rule": r.name or "(no rule)",
                    "requests": r.requests,
                    "routed_requests": r.routed_requests,
                    "saved_usd": format_usd(r.counterfactual_nanos - r.cost_nanos),
                }
                for r in savings_rows
            ],
        },
        "cost_per_pr": [
            {**r.view("team"), "team_id": (spent_by_team.get(r.group) or {}).get("id")} for r in per_pr
        ],
        "reconciliation": {
            "coverage": [line.as_json() for line in recon.totals],
            "bypass_keys": [k.as_json() for k in recon.bypass_keys],
            "gateway_keys_configured": recon.gateway_keys_known,
            "imported": bool(recon.keys) or any(line.billed_nanos is not None for line in recon.totals),
        },
        "chargeback": focus.summary_json(month, tree),
    }


def show(ctx: Ctx) -> Page:
    ctx.require(ctx.viewer.roles.sees_org, "see the whole organisation")
    month, start, until = month_of(ctx)
    data = org_data(ctx.store, month, start, until, ctx.settings.gateway_provider_key_ids)
    data["reports_available"] = missing("reports") is None
    return Page("org.html", data, f"Organisation · {month}")


def focus_csv(ctx: Ctx) -> Response:
    ctx.require(ctx.viewer.roles.sees_org, "download the chargeback")
    month, start, _ = month_of(ctx)
    rows = ctx.store.chargeback_rows(iso(start), iso(focus.month_bounds(month)[1]))
    text = focus.to_csv(focus.focus_rows(rows, month, Pricer(ctx.settings.price_overrides_file)))
    return Response(
        text,
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="spendgate-focus-{month}.csv"'},
    )


def report_html(ctx: Ctx) -> Response:
    """The finance or governance report for a month, as the HTML file the schedule would send
    (a download: it carries its own styles, outside the console's page policy)."""
    ctx.require(ctx.viewer.roles.sees_org, "download reports")
    kind = ctx.request.path_params["report"]
    if kind not in ("finance", "governance"):
        raise ValueError("a report is finance or governance")
    from spendgate.reports.produce import produce

    month, _, _ = month_of(ctx)
    made = produce(ctx.store, kind, month=month, formats=("html",), now=datetime.now(UTC))
    output = made.outputs[0]
    return Response(
        output.content,
        media_type="text/html",
        headers={"content-disposition": f'attachment; filename="{output.filename}"'},
    )
