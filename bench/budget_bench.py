"""Latency of the budget step alone: BudgetEnforcer.reserve + settle, local, shared and Redis.

    python bench/budget_bench.py [--iterations 5000] [--budgets 5] [--redis redis://127.0.0.1:6379/0]

Builds a real store (temp SQLite) with N budgets that all apply to one key, then times the
reserve (the part on the request path) and the settle, each call's figures in microseconds, on
in-process counters, on the LMDB file workers share, and on Redis with --redis.
Bounded loop; Redis on loopback only; its keys use a random prefix and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from spendgate.admin.service import create_key
from spendgate.budgets.counters import Counters, LocalCounters
from spendgate.budgets.enforcer import BudgetEnforcer, CallScope
from spendgate.budgets.shared_counters import SharedCounters
from spendgate.store import open_store


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


async def measure(
    counters: Counters, budgets: int, iterations: int, folder: Path
) -> tuple[list[float], list[float]]:
    store = open_store(f"sqlite:///{folder}/bench-{secrets.token_hex(3)}.db")
    store.migrate()
    store.create_org("o")
    store.create_team("o", "t", "CC")
    store.create_user("t", "u", None)
    key, _ = create_key(store, name="k", team="t", user="u")
    scopes = [
        ("org", "o"),
        ("team", "t"),
        ("user", "u"),
        ("key", key.id),
        ("cost_center", "CC"),
        ("use_case", "code-review"),
        ("tag", "repo=api"),
        ("session", "*"),
    ]
    for i in range(budgets):
        kind, value = scopes[i % len(scopes)]
        store.create_budget(name=f"b{i}", scope_type=kind, scope_value=value, amount_nanos=10**15)
    enforcer = BudgetEnforcer(
        store, counters, observe_all=False, reservation_ttl_s=900, on_event=lambda e: None
    )
    enforcer.reload()
    principal = next(iter(store.active_principals().values()))
    scope = CallScope(principal, "code-review", {"repo": "api"}, "session-1")
    reserve_us: list[float] = []
    settle_us: list[float] = []
    for i in range(iterations + 200):
        t0 = time.perf_counter()
        decision = await enforcer.reserve(scope, 5_000_000)
        t1 = time.perf_counter()
        assert decision.reservation_id is not None and decision.blocked is None
        await counters.settle(decision.reservation_id, 4_000_000)
        t2 = time.perf_counter()
        if i >= 200:  # warm-up excluded (first calls seed counters from the ledger)
            reserve_us.append((t1 - t0) * 1e6)
            settle_us.append((t2 - t1) * 1e6)
    store.close()
    return reserve_us, settle_us


def report(name: str, reserve: list[float], settle: list[float]) -> None:
    print(
        f"{name:<8} reserve p50 {statistics.median(reserve):7.1f} us  p99 {percentile(reserve, 99):7.1f} us "
        f"settle p50 {statistics.median(settle):7.1f} us  p99 {percentile(settle, 99):7.1f} us"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--budgets", type=int, default=5, help="budgets that apply to every call")
    parser.add_argument("--redis", default=None, help="also measure Redis-backed counters at this URL")
    args = parser.parse_args()
    print(f"{args.budgets} budgets apply to each call; {args.iterations} calls")
    with tempfile.TemporaryDirectory() as folder:
        report("local", *await measure(LocalCounters(), args.budgets, args.iterations, Path(folder)))
        shared = SharedCounters(Path(folder) / "counters")
        try:
            report("shared", *await measure(shared, args.budgets, args.iterations, Path(folder)))
        finally:
            await shared.close()
        if args.redis:
            from spendgate.budgets.redis_counters import RedisCounters

            prefix = f"spendgate-bench-{secrets.token_hex(4)}:"
            redis_counters = RedisCounters(args.redis, prefix)
            try:
                report("redis", *await measure(redis_counters, args.budgets, args.iterations, Path(folder)))
            finally:
                import redis.asyncio as aioredis

                client = aioredis.Redis.from_url(args.redis)
                keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
                if keys:
                    await client.delete(*keys)
                await client.aclose()
                await redis_counters.close()


if __name__ == "__main__":
    asyncio.run(main())
