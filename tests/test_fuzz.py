"""Hostile input, in bulk: hundreds of malformed requests to both APIs and /admin/ (issue #10).

Bounded and seeded (the same requests every run), loopback only, a few seconds. Every answer must
be a 4xx in the format of the API the path belongs to, none may hang, nothing malformed may reach
the provider or the ledger, and good calls must still be served afterwards.
"""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from spendgate.fake_upstream import FakeUpstream
from spendgate.gateway import Gateway
from tests.conftest import MASTER_KEY
from tests.seeded import serve_seeded

SEED = 20261129
HI = [{"role": "user", "content": "hi"}]
GOOD_MESSAGES = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": HI}
GOOD_CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
HOSTILE_VALUES: list[Any] = [
    None,
    True,
    False,
    -1,
    0,
    2**64,
    1e308,
    "",
    "yes",
    "16",
    "a\u0000b",
    "\u0007\u001b[31m",
    "x" * 5000,
    "'; DROP TABLE ledger; --",
    [],
    [1, 2],
    {},
    {"a": {"b": {"c": []}}},
    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
]
# The fields Spendgate reads, per API (Anthropic's adapter does not read OpenAI-only fields).
ANTHROPIC_FIELDS = ["model", "max_tokens", "stream", "metadata", "messages"]
OPENAI_FIELDS = [*ANTHROPIC_FIELDS, "max_completion_tokens", "stream_options"]


def valid(field: str, value: Any, api: str) -> bool:
    """Values that are fine for `field`: left out, the fuzz sends only what must be refused."""
    if field == "model":
        return False  # a string model is made unknown below (404); anything else is a 400
    if field == "messages":
        return isinstance(value, list)  # a list: the provider judges its items
    if field == "stream_options":
        return value is None or isinstance(value, dict)
    if field == "metadata":
        return value is None or value == {}
    if field == "stream":
        return value is None or isinstance(value, bool)
    return value is None and api == "openai"  # a null token limit is "no limit" for OpenAI


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.fixture
def target(tmp_path: Path, fake: FakeUpstream) -> Iterator[tuple[str, Gateway, str]]:
    yield from serve_seeded(tmp_path, fake, header_timeout_s=2.0, body_timeout_s=2.0)


def body_cases(rng: random.Random, good: dict[str, Any], api: str) -> list[bytes]:
    """Bodies that are each wrong in a way Spendgate must catch before forwarding."""
    cases: list[Any] = []
    for field in ANTHROPIC_FIELDS if api == "anthropic" else OPENAI_FIELDS:
        for value in HOSTILE_VALUES:
            if valid(field, value, api):
                continue
            if field == "model" and isinstance(value, str) and value:
                value += "-no-such-model"  # no price: refused with a 404
            cases.append({**good, field: value})
    cases.append({**good, "metadata": nested(600)})
    cases.append({**good, "metadata": {"tags": {f"t{i}": "v" for i in range(5000)}}})
    cases.append({**good, "metadata": {"use_case": "x\u0000"}})
    raw = [json.dumps(c).encode() for c in cases]
    raw += [b"", b"{", b"[]", b"null", b"42", b'"text"', b"\xff\xfe\x00", b"{" * 2000, b'{"model": "x",}']
    rng.shuffle(raw)
    return raw


def count_tokens_cases() -> list[bytes]:
    """count_tokens reads no token limit and checks no price: bodies broken in what it does read."""
    good = {"model": "claude-haiku-4-5", "messages": HI}
    cases = [{**good, "model": v} for v in HOSTILE_VALUES if not isinstance(v, str) or not v]
    for field in ("stream", "metadata", "messages", "max_tokens"):
        cases += [
            {**good, field: v} for v in HOSTILE_VALUES if v is not None and not valid(field, v, "anthropic")
        ]
    return [json.dumps(c).encode() for c in cases] + [b"", b"[]", b"{", b"\xff"]


def plain_name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 200 and value.isprintable()


def expect_anthropic(response: httpx.Response, what: str) -> None:
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text[:300])
    body = response.json()
    assert body["type"] == "error" and set(body["error"]) >= {"type", "message"}, (what, body)


def expect_openai(response: httpx.Response, what: str) -> None:
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text[:300])
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code"}, (what, error)


def expect_admin(response: httpx.Response, what: str) -> None:
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text[:300])
    error = response.json()["error"]
    assert set(error) >= {"type", "message"}, (what, error)


def test_hundreds_of_hostile_requests_all_get_a_clean_4xx(
    target: tuple[str, Gateway, str], fake: FakeUpstream
) -> None:
    url, gw, key = target
    rng = random.Random(SEED)
    sent = 0
    started = time.monotonic()
    anthropic_headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    openai_headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    admin_headers = {"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"}
    with httpx.Client(base_url=url, timeout=10) as http:
        for raw in body_cases(rng, GOOD_MESSAGES, "anthropic"):
            expect_anthropic(http.post("/v1/messages", content=raw, headers=anthropic_headers), raw[:80])
            sent += 1
        for raw in body_cases(rng, GOOD_CHAT, "openai"):
            expect_openai(http.post("/v1/chat/completions", content=raw, headers=openai_headers), raw[:80])
            sent += 1
        for raw in count_tokens_cases():
            expect_anthropic(
                http.post("/v1/messages/count_tokens", content=raw, headers=anthropic_headers), raw[:80]
            )
            sent += 1
        # Keys: missing, wrong, malformed, in odd places.
        for headers in (
            {},
            {"x-api-key": ""},
            {"x-api-key": "sk-sg-" + "A" * 43},
            {"x-api-key": "x" * 4000},
            {"authorization": "Bearer"},
            {"authorization": "Basic Zm9vOmJhcg=="},
            {"authorization": f"Bearer {key}x"},
        ):
            expect_anthropic(http.post("/v1/messages", json=GOOD_MESSAGES, headers=headers), headers)
            expect_openai(http.post("/v1/chat/completions", json=GOOD_CHAT, headers=headers), headers)
            sent += 2
        # Unknown paths and methods.
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            expect_anthropic(http.request(method, "/v1/messages", headers=anthropic_headers), method)
            expect_openai(http.request(method, "/v1/chat/completions", headers=openai_headers), method)
            sent += 2
        paths = (
            "/",
            "/v1",
            "/v2/messages",
            "/v1/messages/x",
            "/%00",
            "/..%2f..%2fetc/passwd",
            "/" + "a" * 3000,
        )
        for path in paths:
            expect_anthropic(http.post(path, json=GOOD_MESSAGES, headers=anthropic_headers), path)
            sent += 1
        for path in ("/v1/chat/x", "/v1/chat/completions/1", "/v1/completions"):
            expect_openai(http.post(path, json=GOOD_CHAT, headers=openai_headers), path)
            sent += 1
        # The admin API: bad bodies, bad refs, bad queries, no key.
        admin_bodies: list[tuple[str, str, Any]] = [("POST", "/orgs", value) for value in HOSTILE_VALUES]
        for value in HOSTILE_VALUES:
            if not plain_name(value):
                admin_bodies.append(("POST", "/teams", {"org": value, "name": "t", "cost_center": "c"}))
                admin_bodies.append(("POST", "/keys", {"name": value, "team": "platform"}))
            if value not in (True, "16"):  # $1 and $16 are amounts
                budget = {"name": "b", "scope": "team", "value": "platform", "amount_usd": value}
                admin_bodies.append(("POST", "/budgets", budget))
            if value not in (None, 0, False, True, "16"):  # none, or a count
                admin_bodies.append(("POST", "/keys/k/limits", {"rpm": value}))
        for method, path, body in admin_bodies:
            answer = http.request(method, f"/admin{path}", json=body, headers=admin_headers)
            expect_admin(answer, (path, body))
            sent += 1
        refs = ("/teams/%00/revoke", "/keys/%07/revoke", "/spend?by=nope", "/spend?since=%00")
        for path in (*refs, "/ledger?limit=abc", "/nope", "/keys/" + "k" * 3000):
            method = "POST" if path.endswith("revoke") else "GET"
            expect_admin(http.request(method, f"/admin{path}", headers=admin_headers), path)
            sent += 1
        for path in ("/orgs", "/keys", "/openapi.json", "/docs"):
            expect_admin(http.get(f"/admin{path}"), path)  # no master key
            sent += 1
    # Raw bytes the HTTP parser refuses: a JSON 400 and a closed connection, never a hang.
    host, port = url.removeprefix("http://").split(":")
    for raw in (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET / HTTP/1.1\r\nhost: x\r\nx-bad: a\x00b\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\nzz\r\n",
        b"NOTAMETHOD\r\n\r\n",
    ):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(raw)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, (raw, answer[:200])
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["message"], answer[:200]
        sent += 1
    elapsed = time.monotonic() - started
    assert sent >= 300, sent
    assert elapsed < 120, elapsed  # nothing hung (each request alone has a 10 s timeout)
    assert not fake.requests, [r.path for r in fake.requests][:5]  # nothing malformed left
    # Good calls still flow, and they are all the ledger holds: nothing malformed was billed.
    anthropic.Anthropic(base_url=url, api_key=key, max_retries=0).messages.create(**GOOD_MESSAGES)  # type: ignore[arg-type]
    openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0).chat.completions.create(**GOOD_CHAT)  # type: ignore[call-overload]
    assert gw.ledger.wait_idle(10)
    rows = gw.store.ledger_rows()
    assert [r["status"] for r in rows] == ["ok", "ok"], rows
