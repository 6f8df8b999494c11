"""Every bad input gets a 4xx in the right format (the provider's, or the admin API's JSON), is
refused before it leaves, and is never billed: issue #10 failure 3, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from spendgate.fake_upstream import FakeUpstream
from spendgate.gateway import Gateway
from tests.conftest import MASTER_KEY
from tests.seeded import serve_seeded

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
MESSAGES = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Target:
    url: str
    gw: Gateway
    key: str

    def anthropic(self, body: Any, path: str = "/v1/messages", method: str = "POST") -> httpx.Response:
        headers = {"x-api-key": self.key, "anthropic-version": "2023-06-01"}
        return httpx.request(method, f"{self.url}{path}", json=body, headers=headers, timeout=10)

    def openai(self, body: Any, path: str = "/v1/chat/completions", method: str = "POST") -> httpx.Response:
        headers = {"authorization": f"Bearer {self.key}"}
        return httpx.request(method, f"{self.url}{path}", json=body, headers=headers, timeout=10)

    def admin(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return httpx.request(method, f"{self.url}/admin{path}", json=body, headers=ADMIN, timeout=10)


@pytest.fixture
def target(tmp_path: Path, fake: FakeUpstream, database_url: str) -> Iterator[Target]:
    for url, gw, key in serve_seeded(tmp_path, fake, database_url=database_url):
        yield Target(url, gw, key)


def anthropic_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and set(body["error"]) >= {"type", "message"}, body
    return str(body["error"]["message"])


def openai_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}, error
    return str(error["message"])


def admin_error(response: httpx.Response) -> str:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    error = response.json()["error"]
    assert set(error) >= {"type", "message"}, error
    return str(error["message"])


MALFORMED = [
    {"stream": "yes"},
    {"stream": 1},
    {"max_tokens": -1},
    {"max_tokens": "16"},
    {"max_tokens": True},
    {"max_tokens": 10**30},
    {"metadata": [1]},
    {"metadata": "x"},
    {"metadata": {"use_case": 5}},
    {"metadata": {"tags": [1, 2]}},
    {"metadata": {"tags": {"a": {"b": 1}}}},
    {"metadata": {"tags": {f"t{i}": "v" for i in range(10_000)}}},
]


def test_malformed_fields_spendgate_reads_are_refused_before_they_leave(
    target: Target, fake: FakeUpstream
) -> None:
    for change in MALFORMED:
        anthropic_error(target.anthropic({**MESSAGES, **change}), 400)
        openai_error(target.openai({**CHAT, **change}), 400)
    openai_error(target.openai({**CHAT, "max_completion_tokens": False}), 400)
    openai_error(target.openai({**CHAT, "stream_options": "on"}), 400)
    assert not fake.requests  # nothing forwarded
    assert target.gw.ledger.wait_idle(10) and target.gw.store.ledger_rows() == []  # nothing billed
    assert target.anthropic(MESSAGES).status_code == 200  # good calls still flow


def test_unknown_routes_and_methods_answer_json_in_the_right_format(target: Target) -> None:
    anthropic_error(target.anthropic(MESSAGES, method="GET"), 405)
    anthropic_error(target.anthropic(MESSAGES, path="/v1/nope"), 404)
    anthropic_error(target.anthropic(None, path="/", method="GET"), 404)
    openai_error(target.openai(CHAT, method="GET"), 405)
    openai_error(target.openai(CHAT, path="/v1/chat/nope"), 404)
    openai_error(target.openai(CHAT, path="/v1/models", method="DELETE"), 405)
    admin_error(target.admin("GET", "/nope"))
    admin_error(target.admin("DELETE", "/orgs"))


def test_admin_api_answers_4xx_never_500(target: Target) -> None:
    target.admin("POST", "/orgs", {"name": "other"}).raise_for_status()
    hostile: list[tuple[str, str, Any]] = [
        ("POST", "/keys", {"name": "a\u0000b", "team": "platform"}),
        ("POST", "/keys", {"name": "x" * 100_000, "team": "platform"}),
        ("POST", "/keys", {"name": "k", "team": "platform", "tags": {f"t{i}": "v" for i in range(10_000)}}),
        ("POST", "/keys", {"name": "k", "team": "platform", "tags": {"a": "b\u0000"}}),
        ("POST", "/orgs", {"name": "\u0007bell"}),
        ("POST", "/teams/%00/revoke", None),
        ("POST", "/keys/" + "k" * 5000 + "/revoke", None),
        ("GET", "/spend?by=team&since=%00", None),
        ("POST", "/budgets", {"name": "b", "scope": "team", "value": "platform", "amount_usd": "1e999"}),
        ("POST", "/budgets", {"name": "b", "scope": "team", "value": "platform", "amount_usd": "NaN"}),
        ("POST", "/budgets", {"name": "b", "scope": "team", "value": "platform", "amount_usd": 1e308}),
        ("POST", "/keys/k/limits", {"rpm": 2**70}),
        ("POST", "/orgs", [1, 2]),
        ("POST", "/orgs", "null"),
    ]
    for method, path, body in hostile:
        admin_error(target.admin(method, path, body))
    assert [k.name for k in target.gw.store.list_keys()] == ["k"]  # only the seed's key
