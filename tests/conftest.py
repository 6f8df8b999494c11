"""Shared fixtures: a fake provider and a real Spendgate gateway, both on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spendgate.admin.service import create_key
from spendgate.app import create_app
from spendgate.config import Settings
from spendgate.fake_upstream import FakeSettings, FakeUpstream
from spendgate.gateway import Gateway
from spendgate.servethread import ServerThread
from tests.mailbox import Mailbox, smtp_server

PROVIDER_ANTHROPIC_KEY = "sk-ant-provider-secret-0001"
PROVIDER_OPENAI_KEY = "sk-openai-provider-secret-0001"
MASTER_KEY = "master-test-key"


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstream]:
    settings = FakeSettings(anthropic_api_key=PROVIDER_ANTHROPIC_KEY, openai_api_key=PROVIDER_OPENAI_KEY)
    with FakeUpstream(settings) as upstream:
        yield upstream


@dataclass
class RunningGateway:
    url: str
    gw: Gateway
    key: str  # a virtual key for team "platform", user "ada"
    key_id: str
    team_id: str
    user_id: str
    server: ServerThread

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def rows(self, **where: Any) -> list[dict[str, Any]]:
        """Ledger rows once the writer has caught up, optionally filtered by column values."""
        assert self.gw.ledger.wait_idle(10), "ledger writer did not drain"
        rows = self.gw.store.ledger_rows()
        return [r for r in rows if all(r.get(k) == v for k, v in where.items())]

    def mint_key(self, **kwargs: Any) -> str:
        _, secret = create_key(self.gw.store, **kwargs)
        self.gw.keyring.reload()
        return secret


def gateway_settings(tmp_path: Path, fake: FakeUpstream, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path}/spendgate.db",
        "anthropic_base_url": fake.url,
        "anthropic_api_key": PROVIDER_ANTHROPIC_KEY,
        "openai_base_url": fake.openai_url,
        "openai_api_key": PROVIDER_OPENAI_KEY,
        "master_key": MASTER_KEY,
        "ledger_flush_interval_s": 0.02,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def gateway(tmp_path: Path, fake: FakeUpstream) -> Iterator[RunningGateway]:
    fake.clear()
    settings = gateway_settings(tmp_path, fake)
    app = create_app(settings)
    gw: Gateway = app.state.gateway
    org = gw.store.create_org("acme")
    team = gw.store.create_team(org.name, "platform", "CC-100")
    user = gw.store.create_user(team.name, "ada", "ada@example.com")
    key, secret = create_key(gw.store, name="ada-laptop", team=team.name, user=user.name)
    gw.keyring.reload()
    with ServerThread(app, settings=settings) as server:
        yield RunningGateway(
            url=server.url, gw=gw, key=secret, key_id=key.id, team_id=team.id, user_id=user.id, server=server
        )


# --- production-mode services -------------------------------------------------------------
# CI exports these (see .ci/run); on a laptop without the services, tests that need them skip
# with this reason. When a variable is set, an unreachable service fails the test instead.
POSTGRES_ENV = "SPENDGATE_TEST_POSTGRES_URL"
REDIS_ENV = "SPENDGATE_TEST_REDIS_URL"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import os
    import secrets as _secrets

    import psycopg

    admin_url = os.environ.get(POSTGRES_ENV)
    if not admin_url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}=postgresql://user@host:port/db (CI sets it)")
    name = f"spendgate_test_{os.getpid()}_{_secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def redis_url() -> Iterator[tuple[str, str]]:
    """(Redis URL, a key prefix of this test's own); its keys are deleted afterwards."""
    import os
    import secrets as _secrets

    import redis

    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"Redis tests need {REDIS_ENV}=redis://host:port/db (CI sets it)")
    prefix = f"spendgate-test-{os.getpid()}-{_secrets.token_hex(4)}:"
    client = redis.Redis.from_url(url)
    client.ping()
    try:
        yield url, prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """A local SMTP server: (its mailbox, its port)."""
    with smtp_server() as server:
        yield server
