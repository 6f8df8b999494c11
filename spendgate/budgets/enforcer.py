"""Step 4, reserve: every budget that applies to a call must have room for its worst case.

The enforcer keeps budgets and exemptions in memory (reloaded in the background), maps a
call to its counters, reserves atomically through `Counters`, and on settle records a tier
event the first time spend crosses it in a period.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from spendgate.budgets.counters import Charge, Counters, RateResult
from spendgate.budgets.model import HARD, Budget, BudgetEvent, Exemption, Window, window_for
from spendgate.clock import iso
from spendgate.dimensions import SCOPE_BY
from spendgate.models import Principal
from spendgate.pricing import Usage, format_usd
from spendgate.store.budgets import BudgetStore

log = logging.getLogger(__name__)
_COUNTER_GRACE_S = 2 * 86400  # a counter outlives its period by two days, then Redis forgets it


@dataclass(frozen=True, slots=True)
class CallScope:
    principal: Principal
    use_case: str
    tags: dict[str, str]
    session_id: str | None


@dataclass(slots=True)
class Applied:
    budget: Budget
    window: Window
    charge: Charge
    session_id: str | None
    exemptions: tuple[tuple[str, int], ...] = ()  # (exemption id, headroom nanos) raising the limit


@dataclass(slots=True)
class Decision:
    reservation_id: str | None = None
    amount: int = 0
    applied: list[Applied] = field(default_factory=list)
    blocked: Applied | None = None
    blocked_spent: int = 0
    blocked_reserved: int = 0
    notes: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    amber_actions: list[str] = field(default_factory=list)

    @property
    def note(self) -> str | None:
        return ",".join(self.notes) or None


class BudgetEnforcer:
    def __init__(
        self,
        store: BudgetStore,
        counters: Counters,
        *,
        observe_all: bool,
        reservation_ttl_s: int,
        on_event: Callable[[BudgetEvent], None],
    ) -> None:
        self._store = store
        self.counters = counters
        self._observe_all = observe_all
        self._ttl = reservation_ttl_s
        self._on_event = on_event
        self._budgets: list[Budget] = []
        self.active = False  # any budget at all? (read on every call: an attribute, not a property)
        self._exemptions: dict[str, list[Exemption]] = {}
        self._seen_events: set[tuple[str, str, str]] = set()
        self._windows: dict[str, Window] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- configuration ---
    def reload(self) -> None:
        """Blocking: read budgets and approved exemptions (call from a thread)."""
        self._budgets = self._store.list_budgets()
        self.active = bool(self._budgets)
        by_budget: dict[str, list[Exemption]] = {}
        for exemption in self._store.list_exemptions(status="approved"):
            by_budget.setdefault(exemption.budget_id, []).append(exemption)
        self._exemptions = by_budget

    def applicable(self, scope: CallScope) -> list[tuple[Budget, str | None]]:
        """Budgets that apply to a call, with the session a per-session budget counts for."""
        p = scope.principal
        out: list[tuple[Budget, str | None]] = []
        for budget in self._budgets:
            kind, value = budget.scope_type, budget.scope_value
            if kind == "session":
                if scope.session_id and value in ("*", scope.session_id):
                    out.append((budget, scope.session_id))
                continue
            if kind == "tag":
                k, _, v = value.partition("=")
                match = scope.tags.get(k) == v or (k == "use_case" and scope.use_case == v)
            elif kind == "use_case":
                match = scope.use_case == value
            else:
                # The other column scopes are Principal fields, named like the ledger's columns.
                dimension = SCOPE_BY.get(kind)
                match = dimension is not None and getattr(p, dimension.column) == value
            if match:
                out.append((budget, None))
        return out

    def current_windows(self, now: float) -> list[tuple[Budget, Window, str]]:
        """Read-only, for /metrics: each budget's current period and its counter (session budgets,
        one counter per session, are left out)."""
        out = []
        for budget in self._budgets:
            window = self._window(budget, now) if budget.scope_type != "session" else None
            if window is not None:
                out.append((budget, window, f"b:{budget.id}:{window.key}"))
        return out

    # --- the call path ---
    async def reserve(self, scope: CallScope, worst_nanos: int) -> Decision:
        now = time.time()
        decision = Decision(amount=worst_nanos)
        for budget, session in self.applicable(scope):
            window = self._window(budget, now)
            if window is None:
                continue
            exemptions: tuple[tuple[str, int], ...] = ()
            if budget.id in self._exemptions:
                now_iso = iso(datetime.fromtimestamp(now, UTC))
                exemptions = tuple(
                    (e.id, e.headroom_nanos(budget))
                    for e in self._exemptions[budget.id]
                    if e.active(now_iso, scope.use_case)
                )
            extra = sum(headroom for _, headroom in exemptions)
            counter = f"b:{budget.id}:{window.key}" + (f":{session}" if session else "")
            charge = Charge(
                counter=counter,
                limit=budget.limit_nanos(extra),
                enforce=budget.mode == "enforce" and not self._observe_all,
                ttl_s=int(window.end.timestamp() - now) + _COUNTER_GRACE_S,
            )
            decision.applied.append(Applied(budget, window, charge, session, exemptions))
        if not decision.applied:
            return decision
        charges = [a.charge for a in decision.applied]
        rid = f"r-{secrets.token_hex(8)}"
        result = await self.counters.reserve(rid, charges, worst_nanos, self._ttl)
        if result.missing:
            await self._seed(decision.applied, set(result.missing))
            result = await self.counters.reserve(rid, charges, worst_nanos, self._ttl)
        if result.ok:
            decision.reservation_id = rid
        else:
            first = result.blocked[0]
            decision.blocked = decision.applied[first]
            decision.blocked_spent, decision.blocked_reserved = result.spent[first], result.reserved[first]
            return decision
        self._describe(decision, result.spent, result.reserved, worst_nanos)
        return decision

    def finish(self, decision: Decision, actual_nanos: int, request_id: str) -> None:
        """Settle (or release, if nothing was spent) without holding up the response."""
        if decision.reservation_id is None:
            return
        self._spawn(self._settle(decision, actual_nanos, request_id))

    async def _settle(self, decision: Decision, actual: int, request_id: str) -> None:
        assert decision.reservation_id is not None
        if actual == 0:
            await self.counters.release(decision.reservation_id)
            return
        after = await self.counters.settle(decision.reservation_id, actual)
        for applied, spent in zip(decision.applied, after, strict=False):
            self._check_tiers(applied, spent - actual, spent, request_id)

    # --- helpers ---
    def _window(self, budget: Budget, now: float) -> Window | None:
        """The budget's current period, computed once per period rather than per call."""
        cached = self._windows.get(budget.id)
        if cached is not None and cached.start.timestamp() <= now < cached.end.timestamp():
            return cached
        window = window_for(budget, datetime.fromtimestamp(now, UTC))
        if window is not None:
            self._windows[budget.id] = window
        return window

    def _describe(self, decision: Decision, spent: list[int], reserved: list[int], amount: int) -> None:
        """Response headers for the tightest budget; observation notes; amber actions."""
        tightest: tuple[int, Applied] | None = None
        for applied, s, r in zip(decision.applied, spent, reserved, strict=True):
            budget = applied.budget
            remaining = applied.charge.limit - s - r
            if remaining < 0 and not applied.charge.enforce:
                decision.notes.append(f"would_block:{budget.name}")
            for tier in budget.tiers:
                if tier.name == "amber" and tier.action and s >= budget.amount_nanos * tier.percent // 100:
                    decision.amber_actions.append(tier.action)
            if tightest is None or remaining < tightest[0]:
                tightest = (remaining, applied)
        if tightest is not None:
            remaining, applied = tightest
            decision.headers = {
                "x-spendgate-budget": applied.budget.name,
                "x-spendgate-budget-scope": applied.budget.scope_label(),
                "x-spendgate-budget-remaining-usd": format_usd(max(remaining + amount, 0)),
                "x-spendgate-budget-reset": applied.window.end_iso,
            }

    def _check_tiers(self, applied: Applied, before: int, after: int, request_id: str) -> None:
        budget = applied.budget
        for tier in budget.tiers:
            threshold = budget.amount_nanos * tier.percent // 100
            key = (
                budget.id,
                applied.window.key + (f":{applied.session_id}" if applied.session_id else ""),
                tier.name,
            )
            if before < threshold <= after and key not in self._seen_events:
                self._seen_events.add(key)
                self._on_event(
                    BudgetEvent(
                        budget_id=budget.id,
                        period_key=key[1],
                        tier=tier.name,
                        percent=tier.percent,
                        spend_nanos=after,
                        limit_nanos=threshold,
                        crossed_at=iso(datetime.now(UTC)),
                        request_id=request_id,
                        observed=not applied.charge.enforce and tier.name == HARD,
                    )
                )

    async def _seed(self, applied: list[Applied], missing: set[str]) -> None:
        for a in applied:
            if a.charge.counter in missing:
                spent = await asyncio.to_thread(
                    self._store.budget_spend,
                    a.budget.scope_type,
                    a.budget.scope_value,
                    a.window.start_iso,
                    a.window.end_iso,
                    a.session_id,
                )
                await self.counters.seed(a.charge.counter, spent, a.charge.ttl_s)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("budget settle failed: %r", task.exception())

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def maintain_forever(self, refresh_s: float) -> None:
        """Reload budgets and expire orphaned reservations, forever."""
        while True:
            await asyncio.sleep(refresh_s)
            try:
                await asyncio.to_thread(self.reload)
                await self.counters.expire()
            except Exception:  # keep enforcing with what we have
                log.exception("budget maintenance failed")

    # --- rate limits ---
    @staticmethod
    def rate_limited(p: Principal) -> bool:
        """Does the key have a rate limit at all? (Most have none: no slot to take.)"""
        return p.rpm_limit is not None or p.tpm_limit is not None or p.concurrency_limit is not None

    async def rate_acquire(self, p: Principal) -> RateResult:
        if not self.rate_limited(p):
            return RateResult(True)
        return await self.counters.rate_acquire(p.key_id, p.rpm_limit, p.tpm_limit, p.concurrency_limit)

    def rate_release(self, p: Principal, tokens: int) -> None:
        if p.tpm_limit is not None or p.concurrency_limit is not None:
            self._spawn(self.counters.rate_release(p.key_id, tokens, p.concurrency_limit is not None))

    def rate_settle(self, p: Principal, usage: Usage) -> None:
        """`rate_release` of a metered call: its tokens are added up only when a limit takes them."""
        if p.tpm_limit is not None or p.concurrency_limit is not None:
            self.rate_release(p, usage.total_input + usage.output_tokens)


def rejection_message(decision: Decision) -> str:
    """Names the budget, its spend, limit and reset, why, and how to get an exemption."""
    blocked = decision.blocked
    assert blocked is not None
    budget = blocked.budget
    in_flight = decision.blocked_reserved
    return (
        f"Spendgate budget {budget.name!r} ({budget.scope_label()}, {budget.period} {blocked.window.key}) "
        f"has no room for this call: spent ${format_usd(decision.blocked_spent)}"
        + (f" + ${format_usd(in_flight)} reserved by calls in flight" if in_flight else "")
        + f", this call's worst case ${format_usd(decision.amount)}, hard limit "
        f"${format_usd(blocked.charge.limit)} "
        f"({budget.hard_percent}% of ${format_usd(budget.amount_nanos)}"
        + "".join(f" + ${format_usd(nanos)} from exemption {eid}" for eid, nanos in blocked.exemptions)
        + "). "
        f"It resets at {blocked.window.end_iso}. "
        + (
            "Reservations are released the moment calls end, so retrying shortly may fit; a smaller "
            "max_tokens needs less room. "
            if in_flight
            else ""
        )
        + f"To raise the limit for a while, ask an approver: spendgate exemptions request --budget "
        f"{budget.name} --amount USD --hours N --reason '...'"
    )
