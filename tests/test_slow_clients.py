"""Slow clients are timed out and closed with a JSON 408; good calls keep flowing (issue #10, 4)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest

from spendgate.fake_upstream import FakeUpstream
from spendgate.gateway import Gateway
from tests.seeded import serve_seeded

HEAD = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nanthropic-version: 2023-06-01\r\n"


@pytest.fixture
def strict(tmp_path: Path, fake: FakeUpstream) -> Iterator[tuple[str, Gateway, str]]:
    yield from serve_seeded(tmp_path, fake, header_timeout_s=1.0, body_timeout_s=1.0)


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def answer_of(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return data


def json_error(raw: bytes, status: int) -> dict[str, object]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status}".encode()), raw[:200]
    assert b"content-type: application/json" in head.lower()
    parsed = json.loads(body)
    assert parsed["type"] == "error" and {"type", "message"} <= set(parsed["error"])
    return dict(parsed["error"])


def test_slow_headers_slow_bodies_and_idle_connections_are_closed(
    strict: tuple[str, Gateway, str], fake: FakeUpstream
) -> None:
    url, gw, key = strict
    idle = [connect(url) for _ in range(20)]
    slow_headers = [connect(url) for _ in range(40)]
    for sock in slow_headers:
        sock.sendall(HEAD)  # and never the blank line
    slow_bodies = [connect(url) for _ in range(40)]
    for sock in slow_bodies:
        sock.sendall(HEAD + f"x-api-key: {key}\r\ncontent-length: 1000\r\n\r\n".encode() + b'{"model"')
    started = time.monotonic()
    client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
    for _ in range(5):  # good calls are served meanwhile
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    for sock in idle + slow_headers + slow_bodies:
        assert json_error(answer_of(sock), 408)["type"] == "timeout_error"
    assert time.monotonic() - started < 8  # closed by the deadlines, not by the test's socket timeout
    assert gw.ledger.wait_idle(10)
    assert len(gw.store.ledger_rows()) == 5  # only the good calls; nothing slow was forwarded or billed


def test_bytes_that_are_not_http_get_a_json_400(strict: tuple[str, Gateway, str]) -> None:
    url, _, _ = strict
    sock = connect(url)
    sock.sendall(b"\x16\x03\x01 definitely not http\r\n\r\n")
    assert json_error(answer_of(sock), 400)["type"] == "invalid_request_error"


def test_past_the_concurrency_limit_a_request_gets_a_json_503(tmp_path: Path, fake: FakeUpstream) -> None:
    for url, _, key in serve_seeded(tmp_path, fake, max_concurrency=4):
        held = [connect(url) for _ in range(4)]
        time.sleep(0.2)
        busy = httpx.post(f"{url}/v1/messages", headers={"x-api-key": key}, json={}, timeout=10)
        assert busy.status_code == 503 and busy.json()["error"]["type"] == "overloaded_error"
        for sock in held:
            sock.close()
        time.sleep(0.2)
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200


def test_a_call_slower_than_the_body_deadline_is_answered_once_its_body_is_in(
    strict: tuple[str, Gateway, str], fake: FakeUpstream
) -> None:
    """The body's deadline ends with the body: a provider that takes longer than it (here 1.8 s
    against 1 s) is waited for, and the connection stays open for the next call."""
    url, gw, key = strict
    body = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=url, timeout=10) as client:
        slow = client.post("/v1/messages", json=body, headers={**headers, "x-fake-latency-ms": "1800"})
        assert slow.status_code == 200 and slow.json()["type"] == "message"
        time.sleep(1.5)  # idle past the stale body deadline, within the keep-alive timeout
        again = client.post("/v1/messages", json=body, headers=headers)
        assert again.status_code == 200
        assert client.get("/healthz").status_code == 200
    assert gw.ledger.wait_idle(10)
    assert len(gw.store.ledger_rows()) == 2
