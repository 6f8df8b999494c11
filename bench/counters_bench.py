"""Latency of one budget check on the hot path: reserve + settle, per kind of counters.

Sequential calls (one in flight), so the figures are per-call latency, not throughput:

    python bench/counters_bench.py --redis-url redis://127.0.0.1:6379/0 --iterations 5000

LocalCounters (one process), SharedCounters (an LMDB file that the workers of one host share),
and RedisCounters with --redis-url (Redis keys use a random prefix and are deleted afterwards).
With --processes N, N processes hammer the same SharedCounters file at once (each prints its
own figures): what a reserve costs when workers contend for the file's write lock.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from spendgate.budgets.counters import Charge, Counters, LocalCounters
from spendgate.budgets.redis_counters import RedisCounters
from spendgate.budgets.shared_counters import SharedCounters

WARMUP = 200  # connections opened and scripts loaded before timing


def percentile(sorted_values: list[float], pct: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * pct / 100))]


async def measure(counters: Counters, iterations: int, tag: str = "") -> list[float]:
    """Microseconds per reserve+settle on three counters (team, user, key: a typical call)."""
    charges = [Charge(f"b:{name}:2026-11", 10**15, True, 3600) for name in ("team", "user", "key")]
    for c in charges:
        await counters.seed(c.counter, 0, 3600)
    samples = []
    for i in range(WARMUP + iterations):
        rid = f"bench-{tag}{i}"
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


def show(name: str, samples: list[float]) -> None:
    samples = sorted(samples)
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    mean = statistics.fmean(samples)
    print(f"{name:<8} {len(samples):>6} {p50:>9.1f} {p99:>9.1f} {mean:>9.1f}", flush=True)


def contend(folder: str, iterations: int, n: int) -> None:
    """One of several processes reserving and settling on the same SharedCounters file."""

    async def run() -> list[float]:
        counters = SharedCounters(Path(folder))
        try:
            return await measure(counters, iterations, f"p{n}-")
        finally:
            await counters.close()

    show(f"shared#{n}", asyncio.run(run()))


async def main_async(args: argparse.Namespace) -> None:
    folder = tempfile.mkdtemp(prefix="spendgate-counters-bench-")
    backends: list[tuple[str, Counters]] = [
        ("local", LocalCounters()),
        ("shared", SharedCounters(Path(folder))),
    ]
    prefix = f"spendgate-bench-{os.getpid()}-{secrets.token_hex(4)}:"
    if args.redis_url:
        backends.append(("redis", await RedisCounters.connect(args.redis_url, prefix)))
    print(f"{'backend':<8} {'calls':>6} {'p50 us':>9} {'p99 us':>9} {'mean us':>9}")
    try:
        for name, counters in backends:
            show(name, await measure(counters, args.iterations))
        if args.processes > 1:
            context = multiprocessing.get_context("spawn")
            procs = [
                context.Process(target=contend, args=(folder, args.iterations, n))
                for n in range(args.processes)
            ]
            for proc in procs:
                proc.start()
            for proc in procs:
                proc.join()
    finally:
        for _, counters in backends:
            await counters.close()
        if args.redis_url:
            await delete_prefix(args.redis_url, prefix)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get("SPENDGATE_TEST_REDIS_URL"))
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=2, help="contending processes (1: none)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
