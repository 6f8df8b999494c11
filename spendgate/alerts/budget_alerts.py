"""Budget tier crossings and the month-end forecast, carried by the same channels as anomalies.

Each tier event is delivered once (its alert key is unique); the forecast fires once per budget and
month, when month-to-date spend plus the recent daily run-rate over the days left passes the budget.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from spendgate.alerts.anomalies import Names, Outgoing, usd
from spendgate.alerts.channels import AlertMessage
from spendgate.alerts.config import AlertsConfig, Channel
from spendgate.budgets.model import Budget, window_for
from spendgate.clock import iso
from spendgate.store.alerts import AlertStore
from spendgate.store.budgets import BudgetStore


class BudgetAlertStore(AlertStore, BudgetStore, Protocol):
    """Budget events and forecasts, opened as alerts once."""


_SEVERITY = {"alert": "warning", "amber": "error", "hard": "critical"}
# Events older than this when first seen are history, not news (e.g. alerts just switched on).
EVENT_HORIZON = timedelta(days=1)


def _route(config: AlertsConfig, scope_type: str, scope_value: str, names: Names) -> list[Channel]:
    if scope_type in names.names:
        return config.channels_for(scope_value, names.of(scope_type, scope_value))
    return config.channels_for(scope_value)


def _scope(scope_type: str, scope_value: str, names: Names) -> str:
    return f"{scope_type} {names.of(scope_type, scope_value)}"


def plan_budget_events(
    store: BudgetAlertStore, config: AlertsConfig, now: datetime, names: Names
) -> list[Outgoing]:
    events = store.list_budget_events(since=iso(now - EVENT_HORIZON))
    keys = {f"budget:{e.budget_id}:{e.period_key}:{e.tier}": e for e in events}
    seen = store.alert_keys(list(keys))
    out: list[Outgoing] = []
    for key, e in keys.items():
        if key in seen:
            continue
        scope = _scope(e.scope_type, e.scope_value, names)
        observed = " (observe mode: nothing was blocked)" if e.observed else ""
        title = f"Budget {e.budget} crossed its {e.tier} tier ({e.percent}%)"
        summary = (
            f"Budget {e.budget} ({scope}, {e.period_key}): spend {usd(int(e.spend_nanos))} passed "
            f"the {e.tier} tier at {e.percent}% ({usd(int(e.limit_nanos))}){observed}."
        )
        details: dict[str, Any] = {
            "budget": e.budget,
            "budget_id": e.budget_id,
            "scope": scope,
            "period": e.period_key,
            "tier": e.tier,
            "percent": e.percent,
            "spend_usd": round(int(e.spend_nanos) / 1e9, 2),
            "threshold_usd": round(int(e.limit_nanos) / 1e9, 2),
            "observed": bool(e.observed),
            "crossed_at": e.crossed_at,
        }
        msg = _open(
            store,
            key=key,
            kind="budget",
            budget_id=e.budget_id,
            budget_name=e.budget,
            period=e.period_key,
            title=title,
            summary=summary,
            details=details,
            severity=_SEVERITY.get(e.tier, "warning"),
            now=now,
        )
        if msg is not None:
            out.append((msg, _route(config, e.scope_type, e.scope_value, names)))
    return out


def _open(
    store: AlertStore,
    *,
    key: str,
    kind: str,
    budget_id: str,
    budget_name: str,
    period: str,
    title: str,
    summary: str,
    details: dict[str, Any],
    severity: str,
    now: datetime,
) -> AlertMessage | None:
    """Record a budget or forecast alert and build its message; None when it was already open
    (another replica, or an earlier pass, won). The dedup key is the alert key, prefixed."""
    alert_id = store.open_alert(
        alert_key=key,
        kind=kind,
        group_by="budget",
        group_value=budget_id,
        day=period,
        summary=summary,
        details={**details, "title": title},
        opened_at=iso(now),
    )
    if alert_id is None:
        return None
    return AlertMessage(
        alert_id=alert_id,
        kind=kind,
        action="trigger",
        title=title,
        summary=summary,
        dedup_key=f"spendgate:{key}",
        severity=severity,
        group=f"budget:{budget_name}",
        command="spendgate budgets list",
        details=details,
        at=iso(now),
    )


def forecast(store: BudgetStore, budget: Budget, now: datetime, run_rate_days: int) -> dict[str, Any] | None:
    """Month-end projection for a monthly budget: month-to-date + daily run-rate x days left (from now)."""
    window = window_for(budget, now)
    if budget.period != "month" or budget.scope_type == "session" or window is None:
        return None
    mtd = store.budget_spend(budget.scope_type, budget.scope_value, window.start_iso, iso(now))
    # The run-rate: the last N whole days in the budget's time zone (today is partial).
    midnight = now.astimezone(ZoneInfo(budget.timezone)).replace(hour=0, minute=0, second=0, microsecond=0)
    recent_start = midnight - timedelta(days=run_rate_days)
    recent = store.budget_spend(budget.scope_type, budget.scope_value, iso(recent_start), iso(midnight))
    rate = recent / run_rate_days
    days_left = max((window.end - now).total_seconds() / 86400, 0.0)
    projected = mtd + rate * days_left
    return {
        "period": window.key,
        "mtd_nanos": mtd,
        "rate_nanos": rate,
        "days_left": days_left,
        "projected_nanos": projected,
    }


def plan_forecasts(
    store: BudgetAlertStore, config: AlertsConfig, now: datetime, names: Names
) -> list[Outgoing]:
    out: list[Outgoing] = []
    for budget in store.list_budgets():
        found = forecast(store, budget, now, config.detect.forecast_days)
        if found is None or found["projected_nanos"] <= budget.amount_nanos:
            continue
        if found["projected_nanos"] < config.detect.min_spend_nanos:
            continue
        key = f"forecast:{budget.id}:{found['period']}"
        if store.alert_keys([key]):
            continue
        scope = _scope(budget.scope_type, budget.scope_value, names)
        title = f"Budget {budget.name} is on track to overrun: {usd(found['projected_nanos'])} projected"
        summary = (
            f"Budget {budget.name} ({scope}, {found['period']}): {usd(found['mtd_nanos'])} so far, "
            f"{usd(found['rate_nanos'])}/day over the last {config.detect.forecast_days} days, "
            f"{found['days_left']:.1f} days left: {usd(found['projected_nanos'])} projected vs a budget of "
            f"{usd(budget.amount_nanos)} ({found['projected_nanos'] / budget.amount_nanos:.0%})."
        )
        details = {
            "budget": budget.name,
            "budget_id": budget.id,
            "scope": scope,
            "period": found["period"],
            "month_to_date_usd": round(found["mtd_nanos"] / 1e9, 2),
            "run_rate_usd_per_day": round(found["rate_nanos"] / 1e9, 2),
            "days_left": round(found["days_left"], 2),
            "projected_usd": round(found["projected_nanos"] / 1e9, 2),
            "budget_usd": round(budget.amount_nanos / 1e9, 2),
        }
        msg = _open(
            store,
            key=key,
            kind="forecast",
            budget_id=budget.id,
            budget_name=budget.name,
            period=found["period"],
            title=title,
            summary=summary,
            details=details,
            severity="warning",
            now=now,
        )
        if msg is not None:
            out.append((msg, _route(config, budget.scope_type, budget.scope_value, names)))
    return out
