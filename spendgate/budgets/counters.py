"""Budget counters: settled spend plus in-flight reservations, checked and charged atomically.

`Counters` is the interface; `LocalCounters` keeps them in this process (one event-loop
thread, so every method is atomic by construction). `RedisCounters` shares them across
replicas with Lua scripts. A counter that does not exist yet is reported as missing, so
the caller can seed it from the ledger first (after a restart, a Redis flush, or when a
new period or session starts).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Charge:
    counter: str  # e.g. "b:<budget id>:<period key>[:<session>]"
    limit: int  # nanos; spent + reserved + amount may not pass it
    enforce: bool  # False: observation mode, never blocks
    ttl_s: int  # the counter outlives its period by this much, then disappears


@dataclass(slots=True)
class ReserveResult:
    ok: bool
    missing: list[str] = field(default_factory=list)  # counters to seed, then retry
    blocked: list[int] = field(default_factory=list)  # indexes of charges that could not fit
    spent: list[int] = field(default_factory=list)  # per charge, after the reservation
    reserved: list[int] = field(default_factory=list)


@dataclass(slots=True)
class RateResult:
    ok: bool
    reason: str = ""
    retry_after_s: int = 0


class Counters(Protocol):
    async def reserve(
        self, reservation_id: str, charges: list[Charge], amount: int, ttl_s: int
    ) -> ReserveResult:
        """All or nothing: reserve `amount` on every counter, unless an enforced one would pass its limit."""
        ...

    async def seed(self, counter: str, spent: int, ttl_s: int) -> None:
        """Create a counter with the ledger's spend, unless another replica already did."""
        ...

    async def settle(self, reservation_id: str, actual: int) -> list[int]:
        """Replace the reservation by the actual cost; spent after, per counter."""
        ...

    async def release(self, reservation_id: str) -> None: ...

    async def expire(self) -> int:
        """Release reservations orphaned by a crash; how many."""
        ...

    async def rate_acquire(
        self, key_id: str, rpm: int | None, tpm: int | None, concurrency: int | None
    ) -> RateResult: ...

    async def rate_release(self, key_id: str, tokens: int, concurrency: bool) -> None: ...

    async def snapshot(self, counters: list[str]) -> list[tuple[int, int] | None]:
        """Read-only: (spent, reserved) per counter, None for one that does not exist (for /metrics)."""
        ...

    async def reservations_in_flight(self) -> int:
        """Read-only: reservations not yet settled or released (for /metrics)."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Reservation:
    counters: list[str]
    amount: int
    expires: float


@dataclass(slots=True)
class _Counter:
    spent: int = 0
    reserved: int = 0
    expires: float = 0.0


class LocalCounters:
    """In-process counters (the embedded default: one gateway process)."""

    def __init__(self) -> None:
        self._counters: dict[str, _Counter] = {}
        self._reservations: dict[str, _Reservation] = {}
        self._requests: dict[str, deque[float]] = {}
        self._tokens: dict[str, deque[tuple[float, int]]] = {}
        self._in_flight: dict[str, int] = {}

    async def reserve(
        self, reservation_id: str, charges: list[Charge], amount: int, ttl_s: int
    ) -> ReserveResult:
        now = time.time()
        missing = [c.counter for c in charges if self._live(c.counter, now) is None]
        if missing:
            return ReserveResult(ok=False, missing=missing)
        found = [self._counters[c.counter] for c in charges]
        blocked = [
            i
            for i, (c, k) in enumerate(zip(charges, found, strict=True))
            if c.enforce and k.spent + k.reserved + amount > c.limit
        ]
        if not blocked:
            for counter in found:
                counter.reserved += amount
            self._reservations[reservation_id] = _Reservation(
                [c.counter for c in charges], amount, now + ttl_s
            )
        return ReserveResult(
            ok=not blocked,
            blocked=blocked,
            spent=[k.spent for k in found],
            reserved=[k.reserved for k in found],
        )

    async def seed(self, counter: str, spent: int, ttl_s: int) -> None:
        if self._live(counter, time.time()) is None:
            self._counters[counter] = _Counter(spent=spent, expires=time.time() + ttl_s)

    async def settle(self, reservation_id: str, actual: int) -> list[int]:
        reservation = self._reservations.pop(reservation_id, None)
        if reservation is None:
            return []
        out = []
        for name in reservation.counters:
            counter = self._counters.get(name)
            if counter is None:
                continue
            counter.reserved -= reservation.amount
            counter.spent += actual
            out.append(counter.spent)
        return out

    async def release(self, reservation_id: str) -> None:
        reservation = self._reservations.pop(reservation_id, None)
        if reservation is not None:
            for name in reservation.counters:
                if name in self._counters:
                    self._counters[name].reserved -= reservation.amount

    async def expire(self) -> int:
        now = time.time()
        stale = [rid for rid, r in self._reservations.items() if r.expires <= now]
        for rid in stale:
            await self.release(rid)
        for name in [n for n, c in self._counters.items() if c.expires <= now and c.reserved <= 0]:
            del self._counters[name]
        return len(stale)

    async def rate_acquire(
        self, key_id: str, rpm: int | None, tpm: int | None, concurrency: int | None
    ) -> RateResult:
        now = time.monotonic()
        requests = self._requests.setdefault(key_id, deque())
        tokens = self._tokens.setdefault(key_id, deque())
        while requests and requests[0] <= now - 60:
            requests.popleft()
        while tokens and tokens[0][0] <= now - 60:
            tokens.popleft()
        if rpm is not None and len(requests) >= rpm:
            oldest = requests[0] if requests else now
            return RateResult(False, f"{rpm} requests per minute", int(oldest + 60 - now) + 1)
        if tpm is not None and sum(n for _, n in tokens) >= tpm:
            oldest = tokens[0][0] if tokens else now
            return RateResult(False, f"{tpm} tokens per minute", int(oldest + 60 - now) + 1)
        if concurrency is not None and self._in_flight.get(key_id, 0) >= concurrency:
            return RateResult(False, f"{concurrency} concurrent requests", 1)
        requests.append(now)
        if concurrency is not None:
            self._in_flight[key_id] = self._in_flight.get(key_id, 0) + 1
        return RateResult(True)

    async def rate_release(self, key_id: str, tokens: int, concurrency: bool) -> None:
        if tokens:
            self._tokens.setdefault(key_id, deque()).append((time.monotonic(), tokens))
        if concurrency and self._in_flight.get(key_id, 0) > 0:
            self._in_flight[key_id] -= 1

    async def snapshot(self, counters: list[str]) -> list[tuple[int, int] | None]:
        now = time.time()
        found = [self._counters.get(name) for name in counters]
        return [
            None if c is None or (c.expires <= now and c.reserved <= 0) else (c.spent, c.reserved)
            for c in found
        ]

    async def reservations_in_flight(self) -> int:
        return len(self._reservations)

    async def close(self) -> None:
        return None

    def _live(self, name: str, now: float) -> _Counter | None:
        counter = self._counters.get(name)
        if counter is not None and counter.expires <= now and counter.reserved <= 0:
            del self._counters[name]
            return None
        return counter
