"""Production mode: PostgreSQL ledger, Redis counters, several replicas, and both outages.

These need real services: they skip on a laptop without SPENDGATE_TEST_POSTGRES_URL /
SPENDGATE_TEST_REDIS_URL and fail (never skip) when CI sets them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from spendgate.admin.service import create_key
from spendgate.app import create_app
from spendgate.fake_upstream import FakeUpstream
from spendgate.servethread import ServerThread
from spendgate.store import open_store
from spendgate.store.base import Store
from tests.conftest import gateway_settings
from tests.procs import free_port, provider_env, start_gateway
from tests.tcpproxy import TcpProxy
from tests.test_budgets import CALL_NANOS, body, headers, worst_nanos


def seed(store: Store) -> str:
    store.migrate()
    store.create_org("acme")
    store.create_team("acme", "platform", "CC-100")
    _, secret = create_key(store, name="k", team="platform")
    return secret


def wait_for_rows(store: Store, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = store.ledger_rows()
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_two_replicas_sharing_postgres_and_redis_never_overshoot(
    tmp_path: Path, fake: FakeUpstream, postgres_url: str, redis_url: tuple[str, str]
) -> None:
    store = open_store(postgres_url)
    key = seed(store)
    budget = store.create_budget(
        name="shared",
        scope_type="team",
        scope_value="platform",
        amount_nanos=worst_nanos(1000) * 10 * 100 // 150 + 100,
    )
    env = {
        **os.environ,
        "SPENDGATE_DATABASE_URL": postgres_url,
        "SPENDGATE_REDIS_URL": redis_url[0],
        "SPENDGATE_REDIS_PREFIX": redis_url[1],
        **provider_env(fake),
        "SPENDGATE_LOG_LEVEL": "warning",
    }
    replicas = []
    for n in range(2):
        port = free_port()
        replicas.append(
            (start_gateway({**env, "SPENDGATE_SPOOL_DIR": str(tmp_path / f"spool{n}")}, port), port)
        )
    try:

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as client:
                calls = [
                    client.post(
                        f"http://127.0.0.1:{replicas[i % 2][1]}/v1/messages",
                        json=body(),
                        headers=headers(key, **{"x-fake-latency-ms": "50"}),
                    )
                    for i in range(100)
                ]
                return list(await asyncio.gather(*calls))

        responses = asyncio.run(burst())
    finally:
        for proc, _ in replicas:
            proc.terminate()
            proc.wait(20)
    ok = sum(r.status_code == 200 for r in responses)
    refused = sum(r.status_code == 429 for r in responses)
    assert ok + refused == 100 and 10 <= ok < 100
    rows = wait_for_rows(store, 100)
    spent = sum(r["cost_nanos"] for r in rows)
    assert len(rows) == 100 and spent == ok * CALL_NANOS
    assert spent <= budget.limit_nanos()
    store.close()


def test_gateway_on_postgres_meters_exactly(tmp_path: Path, fake: FakeUpstream, postgres_url: str) -> None:
    app = create_app(gateway_settings(tmp_path, fake, database_url=postgres_url))
    gw = app.state.gateway
    key = seed(gw.store)
    gw.keyring.reload()
    with ServerThread(app) as server:
        for stream in (False, True):
            r = httpx.post(f"{server.url}/v1/messages", json=body(stream=stream), headers=headers(key))
            assert r.status_code == 200
        assert gw.ledger.wait_idle(10)
    rows = open_store(postgres_url).ledger_rows()  # the gateway closed its own store on shutdown
    assert [r["cost_nanos"] for r in rows] == [CALL_NANOS, CALL_NANOS]
    assert [r["streamed"] for r in rows] == [0, 1]


@pytest.fixture
def redis_proxy(redis_url: tuple[str, str]) -> Iterator[tuple[TcpProxy, str, str]]:
    parts = urlsplit(redis_url[0])
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
        yield proxy, f"redis://127.0.0.1:{proxy.port}{parts.path or '/0'}", redis_url[1]


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_redis_outage(
    tmp_path: Path, fake: FakeUpstream, redis_proxy: tuple[TcpProxy, str, str], mode: str
) -> None:
    proxy, url, prefix = redis_proxy
    settings = gateway_settings(tmp_path, fake, redis_url=url, redis_prefix=prefix, redis_failure_mode=mode)
    app = create_app(settings)
    gw = app.state.gateway
    key = seed(gw.store)
    gw.store.create_budget(
        name="team",
        scope_type="team",
        scope_value="platform",
        amount_nanos=(worst_nanos(1000) + 3 * CALL_NANOS) * 100 // 150,  # room for exactly 3 calls
    )
    gw.keyring.reload()
    gw.budgets.reload()
    post = lambda url: httpx.post(f"{url}/v1/messages", json=body(), headers=headers(key))  # noqa: E731
    with ServerThread(app) as server:
        assert post(server.url).status_code == 200  # Redis up: shared counters
        # Fail-open seeds its local counters from the ledger: let that call's row reach it first.
        assert gw.ledger.wait_idle(10)
        proxy.cut()
        during = post(server.url)
        if mode == "closed":
            assert during.status_code == 503
            assert "SPENDGATE_REDIS_FAILURE_MODE" in during.json()["error"]["message"]
        else:
            # Fail-open still enforces, on this replica's counters seeded from the ledger.
            assert during.status_code == 200
            assert post(server.url).status_code == 200
            assert post(server.url).status_code == 429
        proxy.restore()
        time.sleep(2.1)  # the failover retries Redis after two seconds
        after = post(server.url)
        if mode == "closed":
            assert after.status_code == 200
        else:
            # The two calls settled locally were added to the shared counter: the budget stays spent.
            assert after.status_code == 429, after.text
        assert gw.ledger.wait_idle(10)
        calls = 2 if mode == "closed" else 3
        assert sum(r["cost_nanos"] for r in gw.store.ledger_rows()) == calls * CALL_NANOS


def test_redis_fail_open_two_replicas_overrun_at_most_twice_the_room_and_resync(
    tmp_path: Path, fake: FakeUpstream, redis_proxy: tuple[TcpProxy, str, str], redis_url: tuple[str, str]
) -> None:
    proxy, url, prefix = redis_proxy
    apps = []
    for name in ("a", "b"):
        settings = gateway_settings(
            tmp_path,
            fake,
            redis_url=url,
            redis_prefix=prefix,
            redis_failure_mode="open",
            spool_dir=tmp_path / f"spool-{name}",
        )
        apps.append(create_app(settings))
    a, b = (app.state.gateway for app in apps)
    key = seed(a.store)
    room = 3 * CALL_NANOS
    a.store.create_budget(
        name="team",
        scope_type="team",
        scope_value="platform",
        amount_nanos=(worst_nanos(1000) + room) * 100 // 150,  # room for exactly 3 calls
    )
    for gw in (a, b):
        gw.keyring.reload()
        gw.budgets.reload()
    post = lambda url: httpx.post(f"{url}/v1/messages", json=body(), headers=headers(key))  # noqa: E731
    with ServerThread(apps[0]) as one, ServerThread(apps[1]) as two:
        assert post(one.url).status_code == 200  # through Redis
        assert a.ledger.wait_idle(10)
        proxy.cut()
        during = {}
        for server, gw in ((one, a), (two, b)):
            codes = [post(server.url).status_code for _ in range(4)]
            assert gw.ledger.wait_idle(10)
            during[server.url] = codes.count(200)
            assert codes.count(200) <= 2 and codes[-1] == 429, codes  # each: at most the room left
        proxy.restore()
        time.sleep(2.1)  # the failover retries Redis after two seconds
        # Each replica adds its outage spend to the shared counter before it reserves again.
        assert post(one.url).status_code == 429
        assert post(two.url).status_code == 429
        assert a.ledger.wait_idle(10) and b.ledger.wait_idle(10)
    spent = sum(r["cost_nanos"] for r in open_store(a.settings.database_url).ledger_rows())
    assert spent == (1 + sum(during.values())) * CALL_NANOS
    assert spent <= CALL_NANOS + 2 * (room - CALL_NANOS)  # at most N x the room left at the cut
    import redis

    client = redis.Redis.from_url(redis_url[0])
    [counter] = list(client.scan_iter(match=f"{prefix}c:*"))
    assert int(client.hget(counter, "s") or 0) == spent  # every call counted once in the shared counter
    client.close()


def test_postgres_outage_spools_and_lands_exactly_once(
    tmp_path: Path, fake: FakeUpstream, postgres_url: str
) -> None:
    parts = urlsplit(postgres_url)
    seed(open_store(postgres_url))
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        proxied = postgres_url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
        app = create_app(gateway_settings(tmp_path, fake, database_url=proxied))
        gw = app.state.gateway
        _, key = create_key(gw.store, name="k2", team="platform")
        gw.keyring.reload()
        with ServerThread(app) as server:
            proxy.cut()
            ids = []
            for _ in range(5):
                r = httpx.post(f"{server.url}/v1/messages", json=body(), headers=headers(key))
                assert r.status_code == 200  # calls keep flowing with the ledger down
                ids.append(r.headers["x-spendgate-request-id"])
            time.sleep(0.5)
            direct = open_store(postgres_url)
            assert not {r["request_id"] for r in direct.ledger_rows()} & set(ids)
            proxy.restore()
            rows = wait_for_rows(direct, 5)
            assert sorted(r["request_id"] for r in rows) == sorted(ids)
        # After a clean stop the journal is empty and a restart replays nothing twice.
        again = create_app(gateway_settings(tmp_path, fake, database_url=postgres_url))
        again.state.gateway.store.close()
        assert len(open_store(postgres_url).ledger_rows()) == 5
