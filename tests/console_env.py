"""A gateway with the web console, on loopback, and the people the console tests sign in as.

Shared by the HTTP tests (tests/test_console*.py) and the browser tests (tests/test_console_browser.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx

from spendgate import roles
from spendgate.admin.service import create_key
from spendgate.app import create_app
from spendgate.audit import Actor
from spendgate.console.links import mint
from spendgate.fake_upstream import FakeUpstream
from spendgate.gateway import Gateway
from spendgate.servethread import ServerThread
from tests.conftest import gateway_settings

SETUP = Actor("test-setup", "cli")
# email -> (team, role grants)
PEOPLE = {
    "ada@acme.example": ("platform", ["lead:platform"]),
    "linus@acme.example": ("platform", []),
    "grace@acme.example": ("payments", ["lead:payments"]),
    "vp@acme.example": ("platform", ["approver"]),
    "cfo@acme.example": ("payments", ["finance"]),
    "root@acme.example": ("platform", ["admin"]),
}


@dataclass
class Console:
    url: str
    gw: Gateway
    keys: dict[str, str]  # email -> a virtual key of theirs

    def link(self, email: str) -> str:
        url, _, _ = mint(self.gw.store, SETUP, email, self.url, datetime.now(UTC))
        return url

    @contextmanager
    def client(self, email: str | None = None) -> Iterator[httpx.Client]:
        """An HTTP client, signed in through a one-time link when `email` is given."""
        with httpx.Client(base_url=self.url, timeout=30) as client:
            if email is not None:
                token = self.link(email).split("token=", 1)[1]
                r = client.post("/ui/signin/link", data={"token": token})
                assert r.status_code == 303 and r.headers["location"] == "/ui/me", r.text
            yield client

    def call(self, email: str, use_case: str | None, session: str, model: str = "claude-haiku-4-5") -> None:
        """One call as the user; `use_case` None declares none (Spendgate infers one)."""
        sdk = anthropic.Anthropic(base_url=self.url, api_key=self.keys[email], max_retries=0)
        tags = {"x-spendgate-tags": f"use_case={use_case}"} if use_case else {}
        sdk.messages.create(
            model=model,
            max_tokens=64,
            messages=[{"role": "user", "content": f"work for {use_case}"}],
            extra_headers={**tags, "x-claude-code-session-id": session},
        )
        sdk.close()

    def rows(self, **where: Any) -> list[dict[str, Any]]:
        assert self.gw.ledger.wait_idle(10)
        return [r for r in self.gw.store.ledger_rows() if all(r.get(k) == v for k, v in where.items())]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def seed(gw: Gateway) -> dict[str, str]:
    store = gw.store
    store.create_org("acme")
    for team, cc in (("platform", "CC-100"), ("payments", "CC-200")):
        store.create_team("acme", team, cc)
    keys = {}
    for email, (team, grants) in PEOPLE.items():
        name = email.split("@")[0]
        store.create_user(team, name, email)
        _, keys[email] = create_key(store, name=f"{name}-laptop", team=team, user=name)
        for grant in grants:
            role, _, led = grant.partition(":")
            roles.grant(store, SETUP, email, role, led or None)
    gw.keyring.reload()
    return keys


@contextmanager
def running_console(tmp_path: Path, fake: FakeUpstream, **overrides: Any) -> Iterator[Console]:
    fake.clear()
    app = create_app(gateway_settings(tmp_path, fake, **overrides))
    gw: Gateway = app.state.gateway
    keys = seed(gw)
    with ServerThread(app) as server:
        yield Console(url=server.url, gw=gw, keys=keys)
