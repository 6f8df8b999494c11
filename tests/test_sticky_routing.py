"""Routing stickiness across replicas (issue #16): a session keeps the model its first routed call
got, whichever replica serves its later calls, through Redis; without Redis each process decides
alone (and a session alternating replicas flips); a Redis outage never fails a call.

Needs PostgreSQL and Redis: skips without SPENDGATE_TEST_POSTGRES_URL / SPENDGATE_TEST_REDIS_URL,
fails when CI sets them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from spendgate.app import create_app
from spendgate.fake_upstream import FakeUpstream
from spendgate.routing.router import Held
from spendgate.routing.sticky import LocalSticky, RedisSticky
from spendgate.servethread import ServerThread
from spendgate.store import open_store
from tests.conftest import PROVIDER_ANTHROPIC_KEY, gateway_settings
from tests.procs import free_port, start_gateway
from tests.tcpproxy import TcpProxy
from tests.test_production import redis_proxy, seed, wait_for_rows  # noqa: F401 (a fixture)

# The first call of a session declares a quick task and is routed to the fast tier; the calls after
# it declare nothing, so no rule matches them: only a held decision keeps them on the fast model.
POLICY = """
[tiers.anthropic]
fast = "claude-haiku-4-5"

[[rules]]
name = "quick-to-fast"
match.use_case = "quick"
tier = "fast"
"""
TURNS = 6


def call(url: str, key: str, session: str, turn: int) -> httpx.Response:
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01", "x-claude-code-session-id": session}
    if turn == 0:
        headers["x-spendgate-tags"] = "use_case=quick"
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": f"turn {turn}: " + "context line\n" * (20 * (turn + 1))}],
    }
    response = httpx.post(f"{url}/v1/messages", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response


def replicas(tmp_path: Path, env: dict[str, str], name: str) -> Iterator[list[str]]:
    procs, urls = [], []
    try:
        for n in range(2):
            port = free_port()
            procs.append(start_gateway({**env, "SPENDGATE_SPOOL_DIR": str(tmp_path / f"{name}{n}")}, port))
            urls.append(f"http://127.0.0.1:{port}")
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(20)


def alternate(urls: list[str], key: str, session: str) -> list[str]:
    """One session's turns, alternating replicas: the model each turn was answered by."""
    return [call(urls[turn % 2], key, session, turn).json()["model"] for turn in range(TURNS)]


def test_a_session_keeps_its_model_across_two_replicas(
    tmp_path: Path, fake: FakeUpstream, postgres_url: str, redis_url: tuple[str, str]
) -> None:
    store = open_store(postgres_url)
    key = seed(store)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    env = {
        **os.environ,
        "SPENDGATE_DATABASE_URL": postgres_url,
        "SPENDGATE_ANTHROPIC_BASE_URL": fake.url,
        "SPENDGATE_ANTHROPIC_API_KEY": PROVIDER_ANTHROPIC_KEY,
        "SPENDGATE_ROUTING_POLICY_FILE": str(policy),
        "SPENDGATE_LOG_LEVEL": "warning",
    }
    env.pop("SPENDGATE_REDIS_URL", None)
    shared = {**env, "SPENDGATE_REDIS_URL": redis_url[0], "SPENDGATE_REDIS_PREFIX": redis_url[1]}
    for urls in replicas(tmp_path, shared, "shared"):
        kept = alternate(urls, key, "session-shared")
    for urls in replicas(tmp_path, env, "alone"):  # the same, each replica deciding alone
        flipped = alternate(urls, key, "session-alone")
    assert kept == ["claude-haiku-4-5"] * TURNS
    # Without Redis the second replica never saw the routed call: its turns keep the model asked for.
    assert flipped == ["claude-haiku-4-5", "claude-sonnet-4-6"] * (TURNS // 2)
    rows = [r for r in wait_for_rows(store, 2 * TURNS) if r["session_id"] == "session-shared"]
    assert len(rows) == TURNS
    assert {(r["upstream_model"], r["route_rule"]) for r in rows} == {("claude-haiku-4-5", "quick-to-fast")}
    store.close()


def test_a_redis_outage_keeps_sessions_on_local_decisions(
    tmp_path: Path,
    fake: FakeUpstream,
    redis_proxy: tuple[TcpProxy, str, str],  # noqa: F811
) -> None:
    proxy, url, prefix = redis_proxy
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    settings = gateway_settings(
        tmp_path, fake, redis_url=url, redis_prefix=prefix, routing_policy_file=policy
    )
    app = create_app(settings)
    gw = app.state.gateway
    key = seed(gw.store)
    gw.keyring.reload()
    with ServerThread(app) as server:
        assert call(server.url, key, "before", 0).json()["model"] == "claude-haiku-4-5"  # held in Redis
        proxy.cut()
        started = time.monotonic()
        during = [call(server.url, key, "before", turn).json()["model"] for turn in (1, 2)]
        new = [call(server.url, key, "during", turn).json()["model"] for turn in (0, 1)]
        elapsed = time.monotonic() - started
        proxy.restore()
    assert during == ["claude-haiku-4-5"] * 2  # kept on this replica's copy
    assert new == ["claude-haiku-4-5"] * 2  # decided and held locally while Redis was away
    assert elapsed < 3  # one failed attempt, then the breaker: no timeout per call


def test_the_first_decision_wins_in_redis(redis_url: tuple[str, str]) -> None:
    async def race() -> tuple[Held, Held, Held | None, Held | None]:
        a = RedisSticky(redis_url[0], redis_url[1], ttl_s=60)
        b = RedisSticky(redis_url[0], redis_url[1], ttl_s=60)
        key = ("anthropic", "s1", "agent-1", "claude-sonnet-4-6")
        try:
            first = await a.hold(key, Held("claude-haiku-4-5", "r1"))
            second = await b.hold(key, Held("claude-opus-4-6", "r2"))  # too late: a's stands
            seen = await b.held(key)
            other_agent = await b.held(("anthropic", "s1", "agent-2", "claude-sonnet-4-6"))
            return first, second, seen, other_agent
        finally:
            await a.close()
            await b.close()

    first, second, seen, other_agent = asyncio.run(race())
    assert first == second == seen == Held("claude-haiku-4-5", "r1")
    assert other_agent is None  # each agent of a session has its own decision


def test_local_decisions_expire_and_stay_bounded() -> None:
    sticky = LocalSticky(ttl_s=0.05, max_entries=2)
    held: dict[str, Any] = {}

    async def run() -> None:
        held["kept"] = await sticky.hold(("p", "s", "", "m"), Held("a", "r"))
        held["again"] = await sticky.hold(("p", "s", "", "m"), Held("b", "r"))
        await sticky.hold(("p", "s2", "", "m"), Held("c", "r"))
        await sticky.hold(("p", "s3", "", "m"), Held("d", "r"))  # the least recently used goes
        held["evicted"] = await sticky.held(("p", "s", "", "m"))
        await asyncio.sleep(0.06)
        held["expired"] = await sticky.held(("p", "s3", "", "m"))

    asyncio.run(run())
    assert held == {"kept": Held("a", "r"), "again": Held("a", "r"), "evicted": None, "expired": None}
