"""The alert loop: one pass every SPENDGATE_ALERTS_INTERVAL_S (intraday burn rate; the daily check
once the configured local time has passed), started from the gateway's lifespan.

Replicas may all run it: every alert is claimed through the alerts table's unique key, so each one
is opened, delivered and resolved once. Database work runs in a thread and deliveries in background
tasks, so the loop never holds up the event loop that serves calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from spendgate.alerts.anomalies import AnomalyStore, Names, Outgoing, plan_anomalies
from spendgate.alerts.budget_alerts import plan_budget_events, plan_forecasts
from spendgate.alerts.config import AlertsConfig, load_alerts_config
from spendgate.alerts.deliver import Deliverer
from spendgate.alerts.people import LeadSource, with_leads
from spendgate.config import Settings
from spendgate.store.alerts import AlertStore

log = logging.getLogger(__name__)


class AlertSource(AnomalyStore, LeadSource, Protocol):
    """What one pass reads and claims: spend, budgets, alerts and names; team leads to page."""


@dataclass(slots=True)
class PassResult:
    triggered: list[str] = field(default_factory=list)  # alert ids opened
    resolved: list[str] = field(default_factory=list)
    deliveries: int = 0  # (message, channel) pairs dispatched


def plan(store: AlertSource, config: AlertsConfig, now: datetime) -> list[Outgoing]:
    """Every message one pass should send (blocking: run in a thread)."""
    out = plan_anomalies(store, config, now)
    names = Names.load(store)
    if config.detect.budget_events:
        out += plan_budget_events(store, config, now, names)
    if config.detect.forecast:
        out += plan_forecasts(store, config, now, names)
    # A team's leads are paged for its alerts by default; the file's routes add to that.
    return with_leads(store, config, out)


async def check_once(
    store: AlertSource, config: AlertsConfig, deliverer: Deliverer, now: datetime
) -> PassResult:
    """One pass: plan in a thread, then dispatch deliveries in the background (not awaited)."""
    result = PassResult()
    for msg, channels in await asyncio.to_thread(plan, store, config, now):
        (result.resolved if msg.action == "resolve" else result.triggered).append(msg.alert_id)
        result.deliveries += len(channels)
        deliverer.dispatch(msg, channels)
    return result


def deliverer_for(
    store: AlertStore, settings: Settings, on_result: Callable[[str, bool], None] | None = None
) -> Deliverer:
    return Deliverer(
        store,
        attempts=settings.alerts_retry_attempts,
        base_delay_s=settings.alerts_retry_base_s,
        on_result=on_result,
    )


async def run_alerts_forever(
    store: AlertSource,
    settings: Settings,
    *,
    clock: Callable[[], datetime] | None = None,
    config: AlertsConfig | None = None,
    on_result: Callable[[str, bool], None] | None = None,
) -> None:
    """Run alert passes until cancelled. Does nothing (returns) when SPENDGATE_ALERTS_FILE is unset and
    no `config` is given. Errors in a pass are logged; the loop goes on. Cancel the task to stop it."""
    if config is None:
        if settings.alerts_file is None:
            return
        config = load_alerts_config(settings.alerts_file)
    now = clock or (lambda: datetime.now(UTC))
    async with deliverer_for(store, settings, on_result) as deliverer:
        while True:
            try:
                result = await check_once(store, config, deliverer, now())
                if result.triggered or result.resolved:
                    log.info("alerts: %d opened, %d resolved", len(result.triggered), len(result.resolved))
            except Exception:
                log.exception("alert pass failed")
            await asyncio.sleep(settings.alerts_interval_s)
