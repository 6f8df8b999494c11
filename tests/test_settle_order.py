"""The order of settling around the answer's last byte, driven in process through the ASGI endpoint.

The ledger row is journaled before the last byte goes (a kill -9 after it loses nothing); the
budget settle, the rate-limit slot and the metrics follow once the answer is sent (off the
client's latency), and an error there cannot break an answer already given.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from spendgate.admin.service import create_key
from spendgate.app import build_endpoint, build_gateway
from spendgate.fake_upstream import FakeUpstream
from spendgate.gateway import Gateway
from spendgate.settlement import Settlement
from tests.conftest import gateway_settings

BODY = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}


def requests_counted(gw: Gateway) -> float:
    """spendgate_requests_total over every label set, as a scrape reads it."""
    return sum(
        sample.value
        for family in gw.metrics.registry.collect()
        if family.name == "spendgate_requests"
        for sample in family.samples
        if sample.name == "spendgate_requests_total"
    )


def journaled(gw: Gateway) -> list[dict[str, Any]]:
    journal = gw.ledger._journal  # the current segment, as a crash would leave it
    return [orjson.loads(line) for line in journal.current.path.read_bytes().splitlines() if line.strip()]


def call(gw: Gateway, key: str, stream: bool) -> tuple[list[dict[str, Any]], list[tuple[int, float]]]:
    """One call through the endpoint; returns the messages sent and, at each body message, (rows
    journaled, calls counted in the metrics)."""
    endpoint = build_endpoint(gw, gw.anthropic, Settlement(gw.budgets, gw.ledger, gw.metrics))
    body = orjson.dumps({**BODY, "stream": stream})
    scope = {
        "type": "http", "method": "POST", "path": "/v1/messages", "query_string": b"",
        "headers": [(b"x-api-key", key.encode()), (b"anthropic-version", b"2023-06-01"),
                    (b"content-type", b"application/json")],
    }  # fmt: skip
    sent: list[dict[str, Any]] = []
    seen: list[tuple[int, float]] = []
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if not sent:
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # the client stays until the answer is complete
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            seen.append((len(journaled(gw)), requests_counted(gw)))
            if not message.get("more_body", False):
                done.set()

    async def run() -> None:
        await gw.upstream.start()
        try:
            await endpoint(scope, receive, send)
        finally:
            await gw.upstream.close()

    asyncio.run(run())
    return sent, seen


@pytest.fixture
def gw(tmp_path: Path, fake: FakeUpstream) -> Any:
    fake.clear()
    gateway = build_gateway(gateway_settings(tmp_path, fake))
    gateway.store.create_org("acme")
    gateway.store.create_team("acme", "platform", "CC-100")
    _, secret = create_key(gateway.store, name="k", team="platform")
    gateway.keyring.reload()
    gateway.ledger.start()
    yield gateway, secret
    gateway.ledger.stop()
    gateway.store.close()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_row_journaled_before_the_last_byte_metrics_after_it(gw: Any, stream: bool) -> None:
    gateway, key = gw
    sent, seen = call(gateway, key, stream)
    assert sent[0]["status"] == 200 and not sent[-1].get("more_body", False)
    rows_at_last_byte, counted_at_last_byte = seen[-1]
    assert rows_at_last_byte == 1  # journaled: a kill -9 from here on loses nothing
    assert counted_at_last_byte == 0  # the metrics wait until the answer is out
    assert requests_counted(gateway) == 1  # ... and then count it, once
    (row,) = journaled(gateway)
    assert row["status"] == "ok" and row["streamed"] is stream and row["output_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_error_after_the_answer_does_not_break_it(
    gw: Any, stream: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gateway, key = gw

    def broken(*args: Any) -> None:
        raise RuntimeError("metrics broke")

    monkeypatch.setattr(gateway.metrics, "observe_call", broken)
    with caplog.at_level(logging.ERROR, logger="spendgate.settlement"):
        sent, _ = call(gateway, key, stream)
    assert sent[0]["status"] == 200 and not sent[-1].get("more_body", False)
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert (b"message_stop" if stream else b'"usage"') in answer
    assert len(journaled(gateway)) == 1
    assert "after its answer failed" in caplog.text
    assert gateway.ledger.wait_idle(10) and len(gateway.store.ledger_rows()) == 1
