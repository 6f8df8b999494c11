"""Latency of one budget check on the hot path: reserve + settle, LocalCounters vs RedisCounters.

Sequential calls (one in flight), so the figures are per-call latency, not throughput:

    python bench/counters_bench.py --redis-url redis://127.0.0.1:6379/0 --iterations 5000

Without --redis-url only LocalCounters is measured. Redis keys use a random prefix and are
deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import time

from spendgate.budgets.counters import Charge, Counters, LocalCounters
from spendgate.budgets.redis_counters import RedisCounters

WARMUP = 200  # connections opened and scripts loaded before timing


def percentile(sorted_values: list[float], pct: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * pct / 100))]


async def measure(counters: Counters, iterations: int) -> list[float]:
    """Microseconds per reserve+settle on three counters (team, user, key: a typical call)."""
    charges = [Charge(f"b:{name}:2026-11", 10**15, True, 3600) for name in ("team", "user", "key")]
    for c in charges:
        await counters.seed(c.counter, 0, 3600)
    samples = []
    for i in range(WARMUP + iterations):
        rid = f"bench-{i}"
        start = time.perf_counter()
        result = await counters.reserve(rid, charges, 5_000, 60)
        await counters.settle(rid, 4_000)
        elapsed = time.perf_counter() - start
        assert result.ok, result
        if i >= WARMUP:
            samples.append(elapsed * 1e6)
    return samples


async def delete_prefix(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def main_async(args: argparse.Namespace) -> None:
    backends: list[tuple[str, Counters]] = [("local", LocalCounters())]
    prefix = f"spendgate-bench-{os.getpid()}-{secrets.token_hex(4)}:"
    if args.redis_url:
        backends.append(("redis", await RedisCounters.connect(args.redis_url, prefix)))
    print(f"{'backend':<8} {'calls':>6} {'p50 us':>9} {'p99 us':>9} {'mean us':>9}")
    try:
        for name, counters in backends:
            samples = sorted(await measure(counters, args.iterations))
            p50, p99 = percentile(samples, 50), percentile(samples, 99)
            print(f"{name:<8} {len(samples):>6} {p50:>9.1f} {p99:>9.1f} {statistics.fmean(samples):>9.1f}")
    finally:
        for _, counters in backends:
            await counters.close()
        if args.redis_url:
            await delete_prefix(args.redis_url, prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get("SPENDGATE_TEST_REDIS_URL"))
    parser.add_argument("--iterations", type=int, default=5000)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
