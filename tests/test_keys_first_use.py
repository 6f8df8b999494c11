"""A key made while the gateway runs works on its first call, even twenty at once; bad keys never
flood the database (one lookup per unknown key, then remembered; malformed keys never looked up)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from spendgate.app import create_app
from spendgate.auth import KEY_PREFIX, Keyring
from spendgate.cli import build_app
from spendgate.fake_upstream import FakeUpstream
from spendgate.gateway import Gateway
from spendgate.servethread import ServerThread
from tests.conftest import gateway_settings
from tests.seeded import metric

VERSION = {"anthropic-version": "2023-06-01"}
MESSAGE = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def running(tmp_path: Path, fake: FakeUpstream, database_url: str) -> Iterator[tuple[str, Gateway, str]]:
    app = create_app(gateway_settings(tmp_path, fake, database_url=database_url))
    gw: Gateway = app.state.gateway
    gw.store.create_org("acme")
    gw.store.create_team("acme", "platform", "CC-100")
    with ServerThread(app) as server:
        yield server.url, gw, database_url


async def burst(url: str, keys: list[str]) -> list[int]:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=len(keys))) as client:
        replies = await asyncio.gather(
            *(
                client.post(
                    f"{url}/v1/messages",
                    json=MESSAGE,
                    headers={"x-api-key": k, "anthropic-version": "2023-06-01"},
                )
                for k in keys
            )
        )
    return [r.status_code for r in replies]


def test_a_key_made_by_the_cli_works_on_twenty_concurrent_first_calls(
    running: tuple[str, Gateway, str],
) -> None:
    url, _, database_url = running
    made = CliRunner(env={"SPENDGATE_DATABASE_URL": database_url}).invoke(
        build_app(), ["keys", "create", "--name", "ci-fanout", "--team", "platform"]
    )
    assert made.exit_code == 0, made.output
    secret = next(line for line in made.stdout.splitlines() if line.startswith("key: ")).removeprefix("key: ")
    assert asyncio.run(burst(url, [secret] * 20)) == [200] * 20
    assert metric(url, "spendgate_key_lookups_total") == 1  # one lookup, shared by the waiting calls


def test_unknown_keys_are_looked_up_once_and_malformed_ones_never(running: tuple[str, Gateway, str]) -> None:
    url, _, _ = running
    unknown = KEY_PREFIX + secrets.token_urlsafe(32)
    for _ in range(3):
        assert asyncio.run(burst(url, [unknown] * 100)) == [401] * 100
    assert metric(url, "spendgate_key_lookups_total") == 1
    malformed = [f"sk-sg-{i}" for i in range(100)] + ["x" * 5000, "sk-ant-api03-abc", "Bearer"] * 10
    assert set(asyncio.run(burst(url, malformed))) == {401}
    assert metric(url, "spendgate_key_lookups_total") == 1
    # Distinct well-formed keys: each is one lookup, at most LOOKUPS_PER_S a second.
    skipped = metric(url, "spendgate_key_lookups_skipped_total")  # the unknown key, remembered
    flood = [KEY_PREFIX + secrets.token_urlsafe(32) for _ in range(200)]
    started = time.monotonic()
    assert set(asyncio.run(burst(url, flood))) == {401}
    seconds = time.monotonic() - started
    looked_up = metric(url, "spendgate_key_lookups_total") - 1
    assert looked_up + metric(url, "spendgate_key_lookups_skipped_total") - skipped == 200
    assert looked_up <= Keyring.LOOKUPS_PER_S * (int(seconds) + 2)  # the rate cap, whatever the load
