"""Prometheus metrics: one registry per app (never prometheus_client's global one).

Per-call metrics are counted by `Metrics.observe_call`, the one hook in `Call.record`, in plain
ints and floats per label set (no lock, no metric object: it runs on the event loop, as scrapes
do) and turned into Prometheus families at scrape time by a collector. State that lives
elsewhere (ledger writer, budget counters) is read at scrape time too: the ledger by a
collector, budgets by `render()` (async, since Redis is), so every replica reports the shared
counters' value when they are in Redis.

Labels are bounded: team name, use case, model, provider, status; never a user or a key.
Cost is a float counter in USD: fine for charts and alerts; the ledger's integer nano-dollars
stay the exact authority for money.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

from spendgate.auth import Keyring
from spendgate.budgets.enforcer import BudgetEnforcer
from spendgate.dimensions import METRIC_LABELS
from spendgate.errors import CountersUnavailable
from spendgate.ledger import LedgerWriter
from spendgate.models import LedgerRow
from spendgate.store.budgets import BudgetStore

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
    tiers: tuple[tuple[str, float], ...] = ()  # (tier name, ratio of the amount), this budget's own


class _Spend:
    """Cost and tokens of one (team, use case, model, provider) set."""

    __slots__ = ("cost_nanos", "created", "tokens")

    def __init__(self) -> None:
        self.cost_nanos = 0
        self.tokens = [0] * len(TOKEN_TYPES)  # in TOKEN_TYPES order
        self.created = time.time()


class _Timer:
    """One histogram series: observations per bucket (not cumulative), their count and sum."""

    __slots__ = ("buckets", "created", "sum")

    def __init__(self, bounds: int) -> None:
        self.buckets = [0] * bounds
        self.sum = 0.0
        self.created = time.time()


# A call's request counter [count, created], spend, duration timer and overhead timer.
_Series = tuple[list[float], _Spend, _Timer, _Timer]


class _CallCollector(Collector):
    """The per-call counters, as Prometheus families (same names, labels and series as
    prometheus_client's Counter and Histogram, `_created` samples included)."""

    def __init__(self) -> None:
        self.spend: dict[tuple[str, str, str, str], _Spend] = {}
        self.requests: dict[tuple[str, str, str, str, str], list[float]] = {}  # [count, created]
        self.duration: dict[tuple[str, ...], _Timer] = {}  # (provider, streamed)
        self.overhead: dict[tuple[str, ...], _Timer] = {}  # (provider,)
        self.duration_bounds = [*DURATION_BUCKETS, INF]
        self.overhead_bounds = [*OVERHEAD_BUCKETS, INF]
        # The series a call adds to, bound once per label set (as prometheus_client's .labels()
        # children): one lookup a call instead of one per family.
        self.outcomes: dict[tuple[str, str, str, str, str], tuple[list[float], _Spend]] = {}
        self.timers: dict[tuple[str, bool], tuple[_Timer, _Timer]] = {}  # (provider, streamed)
        # A recorded call's four series at once: its outcome's, then its (provider, streamed) timers.
        self.series: dict[tuple[str, str, str, str, str, bool], _Series] = {}

    def outcome(self, key: tuple[str, str, str, str, str]) -> tuple[list[float], _Spend]:
        """The request counter and spend of a new (team, use case, model, provider, status) set."""
        requests = self.requests.get(key)
        overflow = requests is None and len(self.requests) >= MAX_LABEL_SETS
        if overflow:
            key = (key[0], OVERFLOW, key[2], key[3], key[4])
        requests = self.requests.setdefault(key, [0, time.time()])
        spend = self.spend.get(key[:4])
        if spend is None:
            spend = self.spend[key[:4]] = _Spend()
        if not overflow:  # an overflowed use case is not remembered: that is the point of the cap
            self.outcomes[key] = (requests, spend)
        return requests, spend

    def timers_of(self, provider: str, streamed: bool) -> tuple[_Timer, _Timer]:
        """The duration timer of a new (provider, streamed) pair, and its provider's overhead timer."""
        series = (provider, "true" if streamed else "false")
        duration = self.duration.get(series)
        if duration is None:
            duration = self.duration[series] = _Timer(len(self.duration_bounds))
        overhead = self.overhead.get((provider,))
        if overhead is None:
            overhead = self.overhead[(provider,)] = _Timer(len(self.overhead_bounds))
        timers = self.timers[(provider, streamed)] = (duration, overhead)
        return timers

    def series_of(self, key: tuple[str, str, str, str, str, bool]) -> _Series:
        """The series of a new (team, use case, model, provider, status, streamed) set."""
        outcome = key[:5]
        requests, spend = self.outcomes.get(outcome) or self.outcome(outcome)
        duration, overhead = self.timers.get((key[3], key[5])) or self.timers_of(key[3], key[5])
        found = (requests, spend, duration, overhead)
        if outcome in self.outcomes:  # an overflowed use case is not remembered (see outcome)
            self.series[key] = found
        return found

    def collect(self) -> Iterator[Metric]:
        names = METRIC_LABELS
        cost = Metric("spendgate_cost_usd", "Spend in USD (the ledger is the exact record).", "counter")
        tokens = Metric("spendgate_tokens", "Tokens by type.", "counter")
        for key, spend in self.spend.items():
            labels = dict(zip(names, key, strict=True))
            cost.add_sample("spendgate_cost_usd_total", labels, spend.cost_nanos / _NANOS_PER_USD)
            cost.add_sample("spendgate_cost_usd_created", labels, spend.created)
            for kind, count in zip(TOKEN_TYPES, spend.tokens, strict=True):
                typed = {**labels, "type": kind}
                tokens.add_sample("spendgate_tokens_total", typed, count)
                tokens.add_sample("spendgate_tokens_created", typed, spend.created)
        yield cost
        yield tokens
        requests = Metric("spendgate_requests", "Calls recorded in the ledger, by outcome.", "counter")
        for outcome, (total, created) in self.requests.items():
            labels = dict(zip((*names, "status"), outcome, strict=True))
            requests.add_sample("spendgate_requests_total", labels, total)
            requests.add_sample("spendgate_requests_created", labels, created)
        yield requests
        yield _histogram(
            "spendgate_request_duration_seconds",
            "Time from the request's arrival to the call's end.",
            ("provider", "streamed"),
            self.duration,
            self.duration_bounds,
        )
        yield _histogram(
            "spendgate_gateway_overhead_seconds",
            "Time spent in the gateway: total minus the upstream's time (forwarded calls only).",
            ("provider",),
            self.overhead,
            self.overhead_bounds,
        )

    def describe(self) -> Iterable[Metric]:
        return []


def _histogram(
    name: str,
    documentation: str,
    label_names: tuple[str, ...],
    timers: dict[tuple[str, ...], _Timer],
    bounds: list[float],
) -> Metric:
    family = Metric(name, documentation, "histogram")
    le = [floatToGoString(bound) for bound in bounds]  # type: ignore[no-untyped-call]
    for key, timer in timers.items():
        labels = dict(zip(label_names, key, strict=True))
        cumulative = 0
        for bound, count in zip(le, timer.buckets, strict=True):
            cumulative += count
            family.add_sample(f"{name}_bucket", {**labels, "le": bound}, cumulative)
        family.add_sample(f"{name}_count", labels, cumulative)
        family.add_sample(f"{name}_sum", labels, timer.sum)
        family.add_sample(f"{name}_created", labels, timer.created)
    return family


class _StateCollector(Collector):
    """Ledger writer state and the last budget readings, produced at scrape time."""

    def __init__(self, ledger: LedgerWriter, keyring: Keyring) -> None:
        self._ledger = ledger
        self._keyring = keyring
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
        yield CounterMetricFamily(
            "spendgate_ledger_rows_quarantined",
            "Ledger rows the database refused for good, kept in ledger_quarantine (this process).",
            value=self._ledger.rows_quarantined,
        )
        yield GaugeMetricFamily(
            "spendgate_ledger_stall_seconds",
            "How long the oldest row the ledger writer holds has waited for the database.",
            value=self._ledger.stall_s,
        )
        yield CounterMetricFamily(
            "spendgate_key_lookups",
            "Keys not in memory looked up in the database, one at a time (new keys, unknown keys).",
            value=self._keyring.lookups,
        )
        yield CounterMetricFamily(
            "spendgate_key_lookups_skipped",
            "Calls with an unknown key refused without a database lookup (remembered as unknown, "
            "or past the lookup rate).",
            value=self._keyring.unknown_refused,
        )
        if self.in_flight is not None:
            yield GaugeMetricFamily(
                "spendgate_reservations_in_flight",
                "Budget reservations held by calls in flight (all replicas when counters are in Redis).",
                value=self.in_flight,
            )
        utilization = GaugeMetricFamily(
            "spendgate_budget_utilization_ratio",
            "Settled spend in the budget's current period over its amount "
            "(its tiers: spendgate_budget_tier_ratio).",
            labels=["budget", "scope"],
        )
        remaining = GaugeMetricFamily(
            "spendgate_budget_remaining_usd",
            "USD left before the budget's hard limit, net of reservations in flight (0 when past it).",
            labels=["budget", "scope"],
        )
        tiers = GaugeMetricFamily(
            "spendgate_budget_tier_ratio",
            "Each tier of the budget (alert, amber, hard) as a ratio of its amount, so alert rules "
            "compare utilization with the budget's own tiers.",
            labels=["budget", "scope", "tier"],
        )
        for reading in self.budgets:
            utilization.add_metric([reading.budget, reading.scope], reading.utilization)
            remaining.add_metric([reading.budget, reading.scope], reading.remaining_usd)
            for tier, ratio in reading.tiers:
                tiers.add_metric([reading.budget, reading.scope, tier], ratio)
        yield utilization
        yield remaining
        yield tiers

    def describe(self) -> Iterable[Metric]:
        return []


class Metrics:
    """Every Spendgate metric, in a registry of its own."""

    def __init__(
        self, ledger: LedgerWriter, budgets: BudgetEnforcer, store: BudgetStore, keyring: Keyring
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._budgets = budgets
        self._store = store
        r = self.registry
        self._calls = _CallCollector()
        r.register(self._calls)
        self._alerts = Counter(
            "spendgate_alert_deliveries",
            "Alert notifications sent, by channel and outcome.",
            ["channel", "outcome"],
            registry=r,
        )
        self._state = _StateCollector(ledger, keyring)
        r.register(self._state)

    # --- the call path ---
    def observe_call(self, row: LedgerRow, team: str, seconds: float, upstream_seconds: float | None) -> None:
        """One recorded call: cost, tokens, outcome, latency; upstream_seconds None if never forwarded."""
        calls = self._calls
        model = row.upstream_model or "unknown"
        key = (team or "unknown", row.use_case, model, row.provider, row.status, row.streamed)
        # Its four series found with one lookup, and counted inline (as count_call does, without
        # the call): this runs for every call.
        requests, spend, duration, overhead = calls.series.get(key) or calls.series_of(key)
        requests[0] += 1
        spend.cost_nanos += row.cost_nanos
        tokens = spend.tokens
        tokens[0] += row.input_tokens
        tokens[1] += row.cache_write_5m_tokens
        tokens[2] += row.cache_write_1h_tokens
        tokens[3] += row.cache_read_tokens
        tokens[4] += row.output_tokens
        # Each timer: one more in the first bucket whose bound is >= the value, and the sum.
        duration.buckets[bisect.bisect_left(calls.duration_bounds, seconds)] += 1
        duration.sum += seconds
        if upstream_seconds is not None:
            gateway_s = seconds - upstream_seconds if seconds > upstream_seconds else 0.0
            overhead.buckets[bisect.bisect_left(calls.overhead_bounds, gateway_s)] += 1
            overhead.sum += gateway_s

    def count_call(self, row: LedgerRow, team: str) -> None:
        """A recorded call's request, cost and tokens, without latency (a batch's calls have none)."""
        calls = self._calls
        key = (team or "unknown", row.use_case, row.upstream_model or "unknown", row.provider, row.status)
        requests, spend = calls.outcomes.get(key) or calls.outcome(key)
        requests[0] += 1
        spend.cost_nanos += row.cost_nanos
        tokens = spend.tokens
        tokens[0] += row.input_tokens
        tokens[1] += row.cache_write_5m_tokens
        tokens[2] += row.cache_write_1h_tokens
        tokens[3] += row.cache_read_tokens
        tokens[4] += row.output_tokens

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
                    tiers=tuple((t.name, t.percent / 100) for t in budget.tiers),
                )
            )
        self._state.budgets = readings
        self._state.in_flight = await counters.reservations_in_flight()
