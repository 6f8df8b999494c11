"""A gateway on loopback with one org, one team and one key: what the hardening tests start from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spendgate.admin.service import create_key
from spendgate.app import create_app
from spendgate.fake_upstream import FakeUpstream
from spendgate.gateway import Gateway
from spendgate.servethread import ServerThread
from tests.conftest import gateway_settings
from tests.test_metrics import scrape_text


def seed(gw: Gateway) -> str:
    """Org acme, team platform, key k; returns the key's secret."""
    gw.store.create_org("acme")
    gw.store.create_team("acme", "platform", "CC-100")
    _, secret = create_key(gw.store, name="k", team="platform")
    gw.keyring.reload()
    return secret


def serve_seeded(tmp_path: Path, fake: FakeUpstream, **settings: Any) -> Iterator[tuple[str, Gateway, str]]:
    """(URL, gateway, key) of a seeded gateway, its connection limits on, until the caller is done."""
    fake.clear()
    config = gateway_settings(tmp_path, fake, **settings)
    app = create_app(config)
    gw: Gateway = app.state.gateway
    key = seed(gw)
    with ServerThread(app, settings=config) as server:
        yield server.url, gw, key


def metric(url: str, name: str) -> float:
    """One unlabelled sample from /metrics."""
    for line in scrape_text(url).splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")
