"""Budget counters and rate limits: the same scenarios against LocalCounters, SharedCounters (the
LMDB file the workers of one host share) and RedisCounters.

RedisCounters runs only when SPENDGATE_TEST_REDIS_URL is set (CI sets it); then an unreachable
Redis fails the test. Each test uses its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis

from spendgate.budgets.counters import Charge, Counters, LocalCounters
from spendgate.budgets.redis_counters import RedisCounters
from spendgate.budgets.shared_counters import SharedCounters
from tests.conftest import REDIS_ENV

Factory = Callable[[], Counters]
HOUR = 3600


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"Redis tests need {REDIS_ENV}=redis://host:port/db (CI sets it)")
    return url


@pytest.fixture
def redis_factory(redis_url: str) -> Iterator[Callable[[], RedisCounters]]:
    """New RedisCounters sharing one test prefix (like replicas); its keys are deleted at the end."""
    prefix = f"spendgate-test-{os.getpid()}-{secrets.token_hex(4)}:"
    with redis.Redis.from_url(redis_url) as admin:
        admin.ping()  # set but unreachable: an error, not a skip
        try:
            yield lambda: RedisCounters(redis_url, prefix)
        finally:
            keys = list(admin.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                admin.delete(*keys)


@pytest.fixture(params=["local", "shared", "redis"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    if request.param == "local":
        return LocalCounters
    if request.param == "shared":
        return lambda: SharedCounters(tmp_path / "counters")
    factory: Factory = request.getfixturevalue("redis_factory")
    return factory


def run(make: Factory, scenario: Callable[[Counters], Awaitable[None]]) -> None:
    async def main() -> None:
        counters = make()
        try:
            await scenario(counters)
        finally:
            await counters.close()

    asyncio.run(main())


def charge(counter: str, limit: int, enforce: bool = True) -> Charge:
    return Charge(counter=counter, limit=limit, enforce=enforce, ttl_s=HOUR)


async def peek(c: Counters, counter: str) -> tuple[int, int]:
    """(spent, reserved) of a counter, through the interface: a zero reservation, released."""
    rid = f"peek-{secrets.token_hex(4)}"
    result = await c.reserve(rid, [charge(counter, 0, enforce=False)], 0, 60)
    assert result.ok, result
    await c.release(rid)
    return result.spent[0], result.reserved[0]


def test_missing_then_seed_then_reserve(make: Factory) -> None:
    async def scenario(c: Counters) -> None:
        charges = [charge("b:1:2026-11", 1000), charge("b:2:2026-11", 1000)]
        await c.seed("b:2:2026-11", 0, HOUR)
        first = await c.reserve("r1", charges, 50, 60)
        assert (first.ok, first.missing, first.spent) == (False, ["b:1:2026-11"], [])
        assert await peek(c, "b:2:2026-11") == (0, 0)  # a missing counter changes nothing
        await c.seed("b:1:2026-11", 100, HOUR)
        second = await c.reserve("r1", charges, 50, 60)
        assert (second.ok, second.missing, second.blocked) == (True, [], [])
        assert (second.spent, second.reserved) == ([100, 0], [50, 50])

    run(make, scenario)


def test_seed_does_not_overwrite_and_expires(make: Factory) -> None:
    async def scenario(c: Counters) -> None:
        await c.seed("b:seed", 500, HOUR)
        await c.seed("b:seed", 7, HOUR)  # a second replica seeding late: the first writer wins
        assert await peek(c, "b:seed") == (500, 0)
        await c.seed("b:gone", 5, 0)  # past its TTL: missing again, to be seeded for the new period
        result = await c.reserve("r", [charge("b:gone", 100)], 1, 60)
        assert result.missing == ["b:gone"]

    run(make, scenario)


def test_blocks_over_the_limit(make: Factory) -> None:
    async def scenario(c: Counters) -> None:
        await c.seed("b:full", 900, HOUR)
        assert (await c.reserve("r1", [charge("b:full", 1000)], 100, 60)).ok  # exactly the limit fits
        refused = await c.reserve("r2", [charge("b:full", 1000)], 1, 60)
        assert (refused.ok, refused.blocked, refused.spent, refused.reserved) == (False, [0], [900], [100])
        assert await peek(c, "b:full") == (900, 100)

    run(make, scenario)


def test_observe_only_charges_never_block(make: Factory) -> None:
    async def scenario(c: Counters) -> None:
        await c.seed("b:observe", 100, HOUR)
        result = await c.reserve("r1", [charge("b:observe", 10, enforce=False)], 50, 60)
        assert (result.ok, result.blocked, result.spent, result.reserved) == (True, [], [100], [50])

    run(make, scenario)


def test_all_or_nothing_across_counters(make: Factory) -> None:
    async def scenario(c: Counters) -> None:
        await c.seed("b:team", 0, HOUR)
        await c.seed("b:user", 95, HOUR)
        refused = await c.reserve("r1", [charge("b:team", 1000), charge("b:user", 100)], 10, 60)
        assert (refused.ok, refused.blocked, refused.spent, refused.reserved) == (False, [1], [0, 95], [0, 0])
        assert await peek(c, "b:team") == (0, 0) and await peek(c, "b:user") == (95, 0)
        # the full counter observed only: both are charged
        ok = await c.reserve("r2", [charge("b:team", 1000), charge("b:user", 100, enforce=False)], 10, 60)
        assert (ok.ok, ok.reserved) == (True, [10, 10])

    run(make, scenario)


def test_settle_replaces_the_reservation_by_the_actual_cost(make: Factory) -> None:
    async def scenario(c: Counters) -> None:
        await c.seed("b:a", 1000, HOUR)
        await c.seed("b:b", 0, HOUR)
        assert (await c.reserve("r1", [charge("b:a", 10_000), charge("b:b", 10_000)], 300, 60)).ok
        assert await c.settle("r1", 120) == [1120, 120]
        assert await peek(c, "b:a") == (1120, 0) and await peek(c, "b:b") == (120, 0)
        assert await c.settle("r1", 120) == []  # settled once only
        assert await peek(c, "b:a") == (1120, 0)

    run(make, scenario)


def test_release_gives_the_reservation_back(make: Factory) -> None:
    async def scenario(c: Counters) -> None:
        await c.seed("b:rel", 40, HOUR)
        assert (await c.reserve("r1", [charge("b:rel", 100)], 60, 60)).ok
        assert not (await c.reserve("r2", [charge("b:rel", 100)], 1, 60)).ok
        await c.release("r1")
        await c.release("r1")  # twice: no effect
        assert await peek(c, "b:rel") == (40, 0)
        assert (await c.reserve("r3", [charge("b:rel", 100)], 60, 60)).ok

    run(make, scenario)


def test_expire_releases_orphans_and_a_late_settle_changes_nothing(make: Factory) -> None:
    async def scenario(c: Counters) -> None:
        await c.seed("b:exp", 10, HOUR)
        assert (await c.reserve("orphan", [charge("b:exp", 1000)], 200, 0)).ok  # its replica crashed
        assert (await c.reserve("live", [charge("b:exp", 1000)], 30, HOUR)).ok
        assert await c.expire() == 1
        assert await c.expire() == 0
        assert await peek(c, "b:exp") == (10, 30)
        assert await c.settle("orphan", 999) == []
        assert await peek(c, "b:exp") == (10, 30)
        assert await c.settle("live", 25) == [35]

    run(make, scenario)


def test_amounts_beyond_double_precision_are_exact(make: Factory) -> None:
    async def scenario(c: Counters) -> None:
        big = 2**60 + 1  # not representable as a double
        await c.seed("b:big", big, HOUR)
        ok = await c.reserve("r1", [charge("b:big", big + 10)], 10, 60)
        assert (ok.ok, ok.spent, ok.reserved) == (True, [big], [10])
        assert (await c.reserve("r2", [charge("b:big", big + 10)], 1, 60)).blocked == [0]
        assert await c.settle("r1", 2**55 + 3) == [big + 2**55 + 3]
        assert await peek(c, "b:big") == (big + 2**55 + 3, 0)

    run(make, scenario)


async def reserve_many(replicas: list[Counters], n: int) -> int:
    limited = [charge("b:race", 100)]
    results = await asyncio.gather(
        *(replicas[i % len(replicas)].reserve(f"race-{i}", limited, 10, 60) for i in range(n))
    )
    return sum(r.ok for r in results)


def test_concurrent_reservations_never_overshoot(make: Factory) -> None:
    async def scenario(c: Counters) -> None:
        await c.seed("b:race", 0, HOUR)
        assert await reserve_many([c], 100) == 10
        assert await peek(c, "b:race") == (0, 100)

    run(make, scenario)


def test_two_replicas_share_one_budget(redis_factory: Callable[[], RedisCounters]) -> None:
    async def main() -> None:
        a, b = redis_factory(), redis_factory()  # two connection pools, like two gateway processes
        try:
            await a.seed("b:race", 0, HOUR)
            await b.seed("b:race", 50, HOUR)  # too late: the other replica seeded it already
            assert await reserve_many([a, b], 100) == 10
            assert await peek(b, "b:race") == (0, 100)
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_shared_counters_outlive_a_restart(tmp_path: Path) -> None:
    """Like Redis, the counters file keeps spend and reservations when its processes restart."""

    async def main() -> None:
        first = SharedCounters(tmp_path / "counters")
        await first.seed("b:keep", 40, HOUR)
        assert (await first.reserve("r1", [charge("b:keep", 100)], 30, 60)).ok
        await first.close()
        second = SharedCounters(tmp_path / "counters")
        try:
            assert await second.reservations_in_flight() == 1
            assert await second.snapshot(["b:keep", "b:none"]) == [(40, 30), None]
            assert await second.settle("r1", 20) == [60]
        finally:
            await second.close()

    asyncio.run(main())


def test_concurrent_sweeps_release_each_reservation_once(redis_factory: Callable[[], RedisCounters]) -> None:
    async def main() -> None:
        a, b = redis_factory(), redis_factory()
        try:
            await a.seed("b:sweep", 0, HOUR)
            for i in range(20):
                assert (await a.reserve(f"o{i}", [charge("b:sweep", 10_000)], 7, 0)).ok
            counts = await asyncio.gather(a.expire(), b.expire(), a.expire(), b.expire())
            assert sum(counts) == 20
            assert await peek(b, "b:sweep") == (0, 0)
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())


def test_rate_limits(make: Factory) -> None:
    async def scenario(c: Counters) -> None:
        assert (await c.rate_acquire("k-rpm", 2, None, None)).ok
        assert (await c.rate_acquire("k-rpm", 2, None, None)).ok
        refused = await c.rate_acquire("k-rpm", 2, None, None)
        assert (refused.ok, refused.reason) == (False, "2 requests per minute")
        assert 1 <= refused.retry_after_s <= 61
        assert (await c.rate_acquire("k-other", 2, None, None)).ok  # per key

        assert (await c.rate_acquire("k-tpm", None, 100, None)).ok
        await c.rate_release("k-tpm", 150, False)
        refused = await c.rate_acquire("k-tpm", None, 100, None)
        assert (refused.ok, refused.reason) == (False, "100 tokens per minute")
        assert 1 <= refused.retry_after_s <= 61

        assert (await c.rate_acquire("k-cc", None, None, 2)).ok
        assert (await c.rate_acquire("k-cc", None, None, 2)).ok
        refused = await c.rate_acquire("k-cc", None, None, 2)
        assert (refused.ok, refused.reason, refused.retry_after_s) == (False, "2 concurrent requests", 1)
        await c.rate_release("k-cc", 0, True)
        assert (await c.rate_acquire("k-cc", None, None, 2)).ok
        for _ in range(5):  # more releases than acquires: the count stops at zero
            await c.rate_release("k-cc", 0, True)
        assert (await c.rate_acquire("k-cc", None, None, 1)).ok
        assert not (await c.rate_acquire("k-cc", None, None, 1)).ok

    run(make, scenario)


def test_rate_window_forgets_entries_older_than_a_minute(
    redis_url: str, redis_factory: Callable[[], RedisCounters]
) -> None:
    async def main() -> None:
        c = redis_factory()
        try:
            await c.rate_release("k", 50, False)  # recent: still counts
            prefix = c.prefix
            raw = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
            try:
                seconds, micros = await raw.time()
                old = seconds * 1000 + micros / 1000 - 61_000
                await raw.zadd(f"{prefix}rt:k", {f"{old}:x:500": old})
                await raw.incrby(f"{prefix}rs:k", 500)
                await raw.zadd(f"{prefix}rq:k", {f"{old}:y": old})
                assert (await c.rate_acquire("k", 1, 100, None)).ok  # old entries trimmed, 50 < 100
                assert await raw.get(f"{prefix}rs:k") == "50"
                assert await raw.zcard(f"{prefix}rt:k") == 1
            finally:
                await raw.aclose()
        finally:
            await c.close()

    asyncio.run(main())


def test_connect_fails_on_an_unreachable_redis() -> None:
    async def main() -> None:
        with pytest.raises(redis.ConnectionError):
            await RedisCounters.connect("redis://127.0.0.1:1/0", "spendgate-test-unreachable:")

    asyncio.run(main())
