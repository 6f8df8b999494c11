"""Redis counters with a documented answer to a Redis outage.

`closed` (default): calls that have budgets or rate limits are refused with a 503 while
Redis is unreachable: no spend escapes the shared counters. `open`: this replica enforces
on its own local counters (seeded from the ledger) until Redis answers again; N replicas
may then spend up to N times a budget's remaining room for the outage's duration. When Redis
answers again, each replica first adds what it settled locally to the shared counters (once:
the sync carries an id Redis remembers), so the room spent during the outage stays spent.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, TypeVar

from spendgate.budgets.counters import Charge, LocalCounters, RateResult, ReserveResult
from spendgate.errors import CountersUnavailable

if TYPE_CHECKING:  # no Redis client at start without Redis
    from spendgate.budgets.redis_counters import RedisCounters

log = logging.getLogger(__name__)
T = TypeVar("T")
_RETRY_S = 2.0


class FailoverCounters:
    def __init__(self, primary: RedisCounters, mode: Literal["closed", "open"]) -> None:
        self.primary = primary
        self.local = LocalCounters()
        self.mode = mode
        self._down_since: float | None = None
        self._local_reservations: dict[str, list[str]] = {}  # reservation id -> its counters
        self._unsynced: dict[str, int] = {}  # spend settled locally, not yet in the shared counters
        self._sync: tuple[str, dict[str, int]] | None = None  # being added; retried with its id

    @property
    def degraded(self) -> bool:
        return self._down_since is not None

    async def _call(self, primary: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]) -> T:
        if self._down_since is not None and time.monotonic() - self._down_since < _RETRY_S:
            return await self._fallback(local)
        try:
            if self._down_since is not None or self._unsynced or self._sync is not None:
                await self._add_local_spend()  # before anything reads the shared counters
            result = await primary()
        except (ConnectionError, OSError, TimeoutError) as exc:
            if self._down_since is None:
                log.error("Redis unreachable (%s); failing %s", type(exc).__name__, self.mode)
            self._down_since = time.monotonic()
            return await self._fallback(local)
        except Exception as exc:
            # redis-py's own connection errors do not all derive from ConnectionError.
            if type(exc).__module__.startswith("redis"):
                if self._down_since is None:
                    log.error("Redis error (%s); failing %s", type(exc).__name__, self.mode)
                self._down_since = time.monotonic()
                return await self._fallback(local)
            raise
        if self._down_since is not None:
            log.warning("Redis is back; shared counters resume")
            self._down_since = None
            # The next outage seeds afresh from the ledger, not from this one's stale counts.
            self.local = LocalCounters()
        return result

    async def _add_local_spend(self) -> None:
        if self._sync is None:
            if not self._unsynced:
                return
            self._sync, self._unsynced = (secrets.token_hex(8), self._unsynced), {}
        sync_id, amounts = self._sync
        await self.primary.add_spent(sync_id, amounts)
        if self._sync is not None and self._sync[0] == sync_id:
            self._sync = None
            log.warning("added the spend settled during the Redis outage to %d shared counters", len(amounts))

    async def _fallback(self, local: Callable[[], Awaitable[T]]) -> T:
        if self.mode == "closed":
            raise CountersUnavailable(
                "Spendgate cannot reach its shared budget counters (Redis), and is configured to fail "
                "closed (SPENDGATE_REDIS_FAILURE_MODE=closed): calls with budgets are refused until "
                "it is back."
            )
        return await local()

    async def reserve(
        self, reservation_id: str, charges: list[Charge], amount: int, ttl_s: int
    ) -> ReserveResult:
        result = await self._call(
            lambda: self.primary.reserve(reservation_id, charges, amount, ttl_s),
            lambda: self.local.reserve(reservation_id, charges, amount, ttl_s),
        )
        if self.degraded and result.ok:
            self._local_reservations[reservation_id] = [c.counter for c in charges]
        return result

    async def seed(self, counter: str, spent: int, ttl_s: int) -> None:
        await self._call(
            lambda: self.primary.seed(counter, spent, ttl_s), lambda: self.local.seed(counter, spent, ttl_s)
        )

    async def settle(self, reservation_id: str, actual: int) -> list[int]:
        counters = self._local_reservations.pop(reservation_id, None)
        if counters is not None:
            for counter in counters if actual else ():
                self._unsynced[counter] = self._unsynced.get(counter, 0) + actual
            return await self.local.settle(reservation_id, actual)
        return await self._call(lambda: self.primary.settle(reservation_id, actual), _empty)

    async def release(self, reservation_id: str) -> None:
        if self._local_reservations.pop(reservation_id, None) is not None:
            await self.local.release(reservation_id)
            return
        await self._call(lambda: self.primary.release(reservation_id), _none)

    async def expire(self) -> int:
        local = await self.local.expire()
        try:
            return local + await self._call(self.primary.expire, _zero)
        except CountersUnavailable:
            return local

    async def rate_acquire(
        self, key_id: str, rpm: int | None, tpm: int | None, concurrency: int | None
    ) -> RateResult:
        return await self._call(
            lambda: self.primary.rate_acquire(key_id, rpm, tpm, concurrency),
            lambda: self.local.rate_acquire(key_id, rpm, tpm, concurrency),
        )

    async def rate_release(self, key_id: str, tokens: int, concurrency: bool) -> None:
        with contextlib.suppress(CountersUnavailable):
            await self._call(
                lambda: self.primary.rate_release(key_id, tokens, concurrency),
                lambda: self.local.rate_release(key_id, tokens, concurrency),
            )

    async def snapshot(self, counters: list[str]) -> list[tuple[int, int] | None]:
        return await self._call(
            lambda: self.primary.snapshot(counters), lambda: self.local.snapshot(counters)
        )

    async def reservations_in_flight(self) -> int:
        local = await self.local.reservations_in_flight()
        try:
            return local + await self._call(self.primary.reservations_in_flight, _zero)
        except CountersUnavailable:
            return local

    async def close(self) -> None:
        await self.primary.close()


async def _empty() -> list[int]:
    return []


async def _none() -> None:
    return None


async def _zero() -> int:
    return 0
