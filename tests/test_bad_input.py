"""Bad input gets a clear error in the caller's provider format; the ledger stays consistent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from spendgate.admin.service import create_key
from spendgate.app import create_app
from spendgate.fake_upstream import FakeUpstream
from spendgate.servethread import ServerThread
from tests.conftest import PROVIDER_ANTHROPIC_KEY, RunningGateway, gateway_settings

ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01", "content-type": "application/json"}
MESSAGE = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}


def assert_anthropic_error(response: httpx.Response, status: int, error_type: str, words: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert words in body["error"]["message"]
    assert "Traceback" not in response.text


def assert_openai_error(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert words in error["message"]


def test_missing_unknown_revoked_and_expired_keys(gateway: RunningGateway) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(
            base_url=gateway.url, api_key="sk-sg-not-a-real-key", max_retries=0
        ).messages.create(
            **MESSAGE  # type: ignore[arg-type]
        )
    r = httpx.post(f"{gateway.url}/v1/messages", json=MESSAGE, headers=ANTHROPIC_HEADERS)
    assert_anthropic_error(r, 401, "authentication_error", "No Spendgate key")

    revoked = gateway.mint_key(name="old", team="platform")
    gateway.gw.store.revoke_key("old")
    gateway.gw.keyring.reload()
    r = httpx.post(
        f"{gateway.url}/v1/messages", json=MESSAGE, headers={**ANTHROPIC_HEADERS, "x-api-key": revoked}
    )
    assert_anthropic_error(r, 401, "authentication_error", "unknown or revoked")

    expired = gateway.mint_key(name="temp", team="platform", expires_at="2020-01-01")
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {expired}"}
    )
    assert_openai_error(r, 401, "expired")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway.openai_url, api_key="nope", max_retries=0).chat.completions.create(
            **CHAT  # type: ignore[arg-type]
        )
    assert gateway.rows() == []


def test_malformed_json_and_missing_fields(gateway: RunningGateway) -> None:
    auth = {**ANTHROPIC_HEADERS, "x-api-key": gateway.key}
    r = httpx.post(f"{gateway.url}/v1/messages", content=b"{not json", headers=auth)
    assert_anthropic_error(r, 400, "invalid_request_error", "not valid JSON")
    r = httpx.post(f"{gateway.url}/v1/messages", json={"messages": []}, headers=auth)
    assert_anthropic_error(r, 400, "invalid_request_error", "model")
    r = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=b"[1,2",
        headers={"authorization": f"Bearer {gateway.key}"},
    )
    assert_openai_error(r, 400, "not valid JSON")
    r = httpx.post(
        f"{gateway.url}/v1/messages", json=MESSAGE, headers={**auth, "x-spendgate-tags": "use_case"}
    )
    assert_anthropic_error(r, 400, "invalid_request_error", "key=value")
    assert gateway.rows() == []


def test_unknown_model_is_refused_before_it_leaves(gateway: RunningGateway, fake: FakeUpstream) -> None:
    before = len(fake.requests)
    with pytest.raises(anthropic.NotFoundError, match="no price"):
        anthropic.Anthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0).messages.create(
            **{**MESSAGE, "model": "claude-imaginary-9"}  # type: ignore[arg-type]
        )
    with pytest.raises(openai.NotFoundError):
        openai.OpenAI(
            base_url=gateway.openai_url, api_key=gateway.key, max_retries=0
        ).chat.completions.create(
            **{**CHAT, "model": "gpt-imaginary"}  # type: ignore[arg-type]
        )
    assert len(fake.requests) == before
    assert gateway.rows() == []


@pytest.fixture
def small_gateway(tmp_path: Path, fake: FakeUpstream) -> Iterator[tuple[str, str]]:
    app = create_app(gateway_settings(tmp_path, fake, max_body_bytes=2000))
    gw = app.state.gateway
    gw.store.create_org("o")
    gw.store.create_team("o", "t", "CC")
    _, secret = create_key(gw.store, name="k", team="t")
    gw.keyring.reload()
    with ServerThread(app) as server:
        yield server.url, secret


def test_oversized_body_gets_413(small_gateway: tuple[str, str]) -> None:
    url, key = small_gateway
    big = {**MESSAGE, "messages": [{"role": "user", "content": "x" * 5000}]}
    r = httpx.post(f"{url}/v1/messages", json=big, headers={**ANTHROPIC_HEADERS, "x-api-key": key})
    assert_anthropic_error(r, 413, "request_too_large", "limit")
    r = httpx.post(
        f"{url}/v1/chat/completions",
        json={**CHAT, "messages": [{"role": "user", "content": "y" * 5000}]},
        headers={"authorization": f"Bearer {key}"},
    )
    assert_openai_error(r, 413, "limit")


@pytest.fixture
def orphan_gateway(tmp_path: Path, fake: FakeUpstream) -> Iterator[tuple[str, str, object]]:
    # Upstream points at a port where nothing listens.
    settings = gateway_settings(
        tmp_path, fake, anthropic_base_url="http://127.0.0.1:9", openai_base_url="http://127.0.0.1:9/v1"
    )
    app = create_app(settings)
    gw = app.state.gateway
    gw.store.create_org("o")
    gw.store.create_team("o", "t", "CC")
    _, secret = create_key(gw.store, name="k", team="t")
    gw.keyring.reload()
    with ServerThread(app) as server:
        yield server.url, secret, gw


def test_unreachable_upstream_is_a_clear_502_and_one_ledger_row(
    orphan_gateway: tuple[str, str, object],
) -> None:
    url, key, gw = orphan_gateway
    r = httpx.post(f"{url}/v1/messages", json=MESSAGE, headers={**ANTHROPIC_HEADERS, "x-api-key": key})
    assert_anthropic_error(r, 502, "api_error", "could not be reached")
    assert PROVIDER_ANTHROPIC_KEY not in r.text
    r = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"})
    assert_openai_error(r, 502, "could not be reached")
    assert gw.ledger.wait_idle(10)  # type: ignore[attr-defined]
    rows = gw.store.ledger_rows()  # type: ignore[attr-defined]
    assert sorted(r["provider"] for r in rows) == ["anthropic", "openai"]
    assert all(r["status"] == "upstream_unreachable" and r["cost_nanos"] == 0 for r in rows)
