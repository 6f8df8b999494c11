"""Prometheus metrics: one registry per app (never prometheus_client's global one).

Per-call metrics are updated by `Metrics.observe_call`, the one hook in `Call.record`; their
label children are cached per label set, so a call costs a dict lookup and a few increments.
State that lives elsewhere (ledger writer, budget counters) is read at scrape time: the ledger
by a collector, budgets by `render()` (async, since Redis is), so every replica reports the
shared counters' value when they are in Redis.

Labels are bounded: team name, use case, model, provider, status; never a user or a key.
Cost is a float counter in USD: fine for charts and alerts; the ledger's integer nano-dollars
stay the exact authority for money.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from spendgate.budgets.enforcer import BudgetEnforcer
from spendgate.budgets.failover import CountersUnavailable
from spendgate.ledger import LedgerWriter
from spendgate.models import LedgerRow
from spendgate.store.base import Store

log = logging.getLogger(__name__)

TOKEN_TYPES = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")
# Past this many (team, use case, model, provider, status) sets, new use cases fold into
# OVERFLOW: use cases come from request headers, and a typo loop must not explode the series.
MAX_LABEL_SETS = 5000
OVERFLOW = "_other"
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_NANOS_PER_USD = 1e9
# What generate_latest writes: the classic text format, which every Prometheus parses (newer
# prometheus-client releases name version=1.0.0 as CONTENT_TYPE_LATEST, older servers do not know it).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class BudgetReading:
    budget: str  # budget name
    scope: str  # scope type: org, team, user, key, cost_center, use_case, tag
    utilization: float  # settled spend / budget amount (the 80/110/150% tiers are 0.8/1.1/1.5)
    remaining_usd: float  # room left before the hard limit, net of reservations in flight


class _CallChildren:
    """Label children of one (team, use case, model, provider, status) set, resolved once."""

    __slots__ = ("cache_read", "cache_write_1h", "cache_write_5m", "cost", "input", "output", "requests")

    def __init__(self, cost: Counter, tokens: Counter, requests: Counter, labels: tuple[str, ...]) -> None:
        self.cost = cost.labels(*labels[:4])
        self.input = tokens.labels(*labels[:4], "input")
        self.cache_write_5m = tokens.labels(*labels[:4], "cache_write_5m")
        self.cache_write_1h = tokens.labels(*labels[:4], "cache_write_1h")
        self.cache_read = tokens.labels(*labels[:4], "cache_read")
        self.output = tokens.labels(*labels[:4], "output")
        self.requests = requests.labels(*labels)


class _StateCollector(Collector):
    """Ledger writer state and the last budget readings, produced at scrape time."""

    def __init__(self, ledger: LedgerWriter) -> None:
        self._ledger = ledger
        self.budgets: list[BudgetReading] = []
        self.in_flight: int | None = None

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "spendgate_ledger_queue_depth",
            "Ledger rows and budget events queued for the writer thread.",
            value=self._ledger.queue_depth,
        )
        yield GaugeMetricFamily(
            "spendgate_ledger_write_lag_seconds",
            "Age of the oldest row in the last batch written to the database, when it was written.",
            value=self._ledger.last_write_lag_s,
        )
        yield CounterMetricFamily(
            "spendgate_ledger_rows_written",
            "Ledger rows written to the database by this process.",
            value=self._ledger.rows_written,
        )
        if self.in_flight is not None:
            yield GaugeMetricFamily(
                "spendgate_reservations_in_flight",
                "Budget reservations held by calls in flight (all replicas when counters are in Redis).",
                value=self.in_flight,
            )
        utilization = GaugeMetricFamily(
            "spendgate_budget_utilization_ratio",
            "Settled spend in the budget's current period over its amount (tiers: 0.8, 1.1, 1.5).",
            labels=["budget", "scope"],
        )
        remaining = GaugeMetricFamily(
            "spendgate_budget_remaining_usd",
            "USD left before the budget's hard limit, net of reservations in flight (0 when past it).",
            labels=["budget", "scope"],
        )
        for reading in self.budgets:
            utilization.add_metric([reading.budget, reading.scope], reading.utilization)
            remaining.add_metric([reading.budget, reading.scope], reading.remaining_usd)
        yield utilization
        yield remaining

    def describe(self) -> Iterable[Metric]:
        return []


class Metrics:
    """Every Spendgate metric, in a registry of its own."""

    def __init__(self, ledger: LedgerWriter, budgets: BudgetEnforcer, store: Store) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._budgets = budgets
        self._store = store
        r = self.registry
        call_labels = ["team", "use_case", "model", "provider"]
        self._cost = Counter(
            "spendgate_cost_usd", "Spend in USD (the ledger is the exact record).", call_labels, registry=r
        )
        self._tokens = Counter("spendgate_tokens", "Tokens by type.", [*call_labels, "type"], registry=r)
        self._requests = Counter(
            "spendgate_requests",
            "Calls recorded in the ledger, by outcome.",
            [*call_labels, "status"],
            registry=r,
        )
        self._duration = Histogram(
            "spendgate_request_duration_seconds",
            "Time from the request's arrival to the call's end.",
            ["provider", "streamed"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._overhead = Histogram(
            "spendgate_gateway_overhead_seconds",
            "Time spent in the gateway: total minus the upstream's time (forwarded calls only).",
            ["provider"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self._alerts = Counter(
            "spendgate_alert_deliveries",
            "Alert notifications sent, by channel and outcome.",
            ["channel", "outcome"],
            registry=r,
        )
        self._state = _StateCollector(ledger)
        r.register(self._state)
        self._calls: dict[tuple[str, str, str, str, str], _CallChildren] = {}
        self._timers: dict[tuple[str, bool], tuple[Histogram, Histogram]] = {}

    # --- the call path ---
    def observe_call(self, row: LedgerRow, team: str, seconds: float, upstream_seconds: float | None) -> None:
        """One recorded call: cost, tokens, outcome, latency; upstream_seconds None if never forwarded."""
        key = (team or "unknown", row.use_case, row.upstream_model or "unknown", row.provider, row.status)
        kids = self._calls.get(key)
        if kids is None:
            kids = self._children(key)
        kids.requests.inc()
        if row.cost_nanos:
            kids.cost.inc(row.cost_nanos / _NANOS_PER_USD)
        if row.input_tokens:
            kids.input.inc(row.input_tokens)
        if row.cache_write_5m_tokens:
            kids.cache_write_5m.inc(row.cache_write_5m_tokens)
        if row.cache_write_1h_tokens:
            kids.cache_write_1h.inc(row.cache_write_1h_tokens)
        if row.cache_read_tokens:
            kids.cache_read.inc(row.cache_read_tokens)
        if row.output_tokens:
            kids.output.inc(row.output_tokens)
        timers = self._timers.get((row.provider, row.streamed))
        if timers is None:
            timers = self._timers[(row.provider, row.streamed)] = (
                self._duration.labels(row.provider, "true" if row.streamed else "false"),
                self._overhead.labels(row.provider),
            )
        timers[0].observe(seconds)
        if upstream_seconds is not None:
            timers[1].observe(max(seconds - upstream_seconds, 0.0))

    def _children(self, key: tuple[str, str, str, str, str]) -> _CallChildren:
        if len(self._calls) >= MAX_LABEL_SETS:
            team, _, model, provider, status = key
            folded = (team, OVERFLOW, model, provider, status)
            kids = self._calls.get(folded)
            if kids is None:
                kids = self._calls[folded] = _CallChildren(self._cost, self._tokens, self._requests, folded)
            return kids
        kids = self._calls[key] = _CallChildren(self._cost, self._tokens, self._requests, key)
        return kids

    def alert_delivered(self, channel: str, ok: bool) -> None:
        """An alert notification was sent (ok) or could not be delivered."""
        self._alerts.labels(channel, "ok" if ok else "failed").inc()

    # --- scrape ---
    async def render(self) -> bytes:
        """Read the budget counters (shared ones when in Redis), then the text exposition."""
        try:
            await self._refresh_budgets()
        except CountersUnavailable:
            self._state.budgets, self._state.in_flight = [], None
        except Exception:  # a scrape must still answer with everything else
            log.exception("could not read budget counters for /metrics")
            self._state.budgets, self._state.in_flight = [], None
        return generate_latest(self.registry)

    async def _refresh_budgets(self) -> None:
        counters = self._budgets.counters
        current = self._budgets.current_windows(time.time())
        snapshot = await counters.snapshot([name for _, _, name in current])
        readings: list[BudgetReading] = []
        for (budget, window, _), found in zip(current, snapshot, strict=True):
            if found is None:  # no call this period yet in these counters: the ledger knows
                spent = await asyncio.to_thread(
                    self._store.budget_spend,
                    budget.scope_type,
                    budget.scope_value,
                    window.start_iso,
                    window.end_iso,
                )
                reserved = 0
            else:
                spent, reserved = found
            readings.append(
                BudgetReading(
                    budget=budget.name,
                    scope=budget.scope_type,
                    utilization=spent / budget.amount_nanos if budget.amount_nanos else 0.0,
                    remaining_usd=max(budget.limit_nanos() - spent - reserved, 0) / _NANOS_PER_USD,
                )
            )
        self._state.budgets = readings
        self._state.in_flight = await counters.reservations_in_flight()
