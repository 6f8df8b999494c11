"""Retries honour the provider's retry-after / retry-after-ms, bounded, with jittered backoff.

Waits are read off the fake provider's own clock (when it received each try), so they are
lower bounds that extra load on the machine can only lengthen, never shorten.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import pairwise
from pathlib import Path

import anthropic
import openai
import pytest

from spendgate.admin.service import create_key
from spendgate.app import create_app
from spendgate.fake_upstream import FakeUpstream
from spendgate.forward import backoff_s, retry_after_s
from spendgate.routing.policy import Fallbacks
from spendgate.servethread import ServerThread
from tests.conftest import RunningGateway, gateway_settings

POLICY = """
[fallbacks]
retries = 2
backoff_ms = 5
max_retry_after_ms = 2000
[fallbacks.models]
"claude-opus-4-6" = ["claude-sonnet-4-6"]
"gpt-4.1" = ["gpt-4o-mini"]
"""


@pytest.fixture
def retrying(tmp_path: Path, fake: FakeUpstream) -> Iterator[RunningGateway]:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    app = create_app(gateway_settings(tmp_path, fake, routing_policy_file=path))
    gw = app.state.gateway
    gw.store.create_org("o")
    team = gw.store.create_team("o", "platform", "CC")
    key, secret = create_key(gw.store, name="k", team="platform")
    gw.keyring.reload()
    fake.clear()
    with ServerThread(app) as server:
        yield RunningGateway(server.url, gw, secret, key.id, team.id, "", server)


def opus(gateway: RunningGateway, **headers: str) -> anthropic.Anthropic:
    headers = {"x-fake-mode-models": "claude-opus-4-6", **headers}
    return anthropic.Anthropic(
        base_url=gateway.url, api_key=gateway.key, max_retries=0, timeout=30, default_headers=headers
    )


def ask(client: anthropic.Anthropic) -> anthropic.types.Message:
    return client.messages.create(
        model="claude-opus-4-6", max_tokens=64, messages=[{"role": "user", "content": "hello"}]
    )


def sent(fake: FakeUpstream) -> list[tuple[str, float]]:
    return [(json.loads(r.body)["model"], r.received_at) for r in fake.requests if r.method == "POST"]


def gaps(tries: list[tuple[str, float]]) -> list[float]:
    return [b[1] - a[1] for a, b in pairwise(tries)]


def test_retry_after_ms_is_waited_before_each_retry(retrying: RunningGateway, fake: FakeUpstream) -> None:
    client = opus(retrying, **{"x-fake-mode": "error-529", "x-fake-retry-after-ms": "400"})
    assert ask(client).model == "claude-sonnet-4-6"
    tries = sent(fake)
    assert [m for m, _ in tries] == ["claude-opus-4-6"] * 3 + ["claude-sonnet-4-6"]
    opus_gaps = gaps(tries[:3])
    assert all(gap >= 0.4 for gap in opus_gaps), opus_gaps  # the backoff alone would be ~5-10 ms
    [row] = retrying.rows()
    assert (row["attempts"], row["fallback_from"], row["status"]) == (4, "claude-opus-4-6", "ok")


def test_retry_after_in_seconds_and_as_a_date(retrying: RunningGateway, fake: FakeUpstream) -> None:
    ask(opus(retrying, **{"x-fake-mode": "error-429", "x-fake-retry-after": "1"}))
    assert all(gap >= 1.0 for gap in gaps(sent(fake)[:3]))
    fake.clear()
    soon = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)  # 1-2 s away
    date = format_datetime(soon, usegmt=True)
    ask(opus(retrying, **{"x-fake-mode": "error-429", "x-fake-retry-after": date}))
    assert sent(fake)[1][1] >= soon.timestamp() - 0.01  # the first retry waited for the date


def test_a_wait_past_the_bound_skips_to_the_fallback(retrying: RunningGateway, fake: FakeUpstream) -> None:
    began = time.monotonic()
    message = ask(opus(retrying, **{"x-fake-mode": "error-429", "x-fake-retry-after": "3600"}))
    assert message.model == "claude-sonnet-4-6"
    assert time.monotonic() - began < 60  # nowhere near the hour the provider asked for
    assert [m for m, _ in sent(fake)] == ["claude-opus-4-6", "claude-sonnet-4-6"]
    [row] = retrying.rows()
    assert (row["attempts"], row["fallback_from"]) == (2, "claude-opus-4-6")


def test_with_nothing_left_the_providers_answer_and_its_wait_reach_the_client(
    retrying: RunningGateway, fake: FakeUpstream
) -> None:
    both = "claude-opus-4-6,claude-sonnet-4-6"
    client = opus(
        retrying, **{"x-fake-mode": "error-429", "x-fake-retry-after-ms": "90000", "x-fake-mode-models": both}
    )
    with pytest.raises(anthropic.RateLimitError) as caught:
        ask(client)
    assert caught.value.response.headers["retry-after-ms"] == "90000"  # the SDK waits, not the gateway
    assert [m for m, _ in sent(fake)] == ["claude-opus-4-6", "claude-sonnet-4-6"]
    [row] = retrying.rows()
    assert (row["attempts"], row["status"], row["status_code"]) == (2, "upstream_error", 429)


def test_openai_retries_honour_retry_after_ms(retrying: RunningGateway, fake: FakeUpstream) -> None:
    client = openai.OpenAI(
        base_url=retrying.openai_url,
        api_key=retrying.key,
        max_retries=0,
        default_headers={
            "x-fake-mode": "error-500",
            "x-fake-mode-models": "gpt-4.1",
            "x-fake-retry-after-ms": "300",
        },
    )
    reply = client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "x"}])
    assert reply.model == "gpt-4o-mini"
    tries = sent(fake)
    assert [m for m, _ in tries] == ["gpt-4.1"] * 3 + ["gpt-4o-mini"]
    assert all(gap >= 0.3 for gap in gaps(tries[:3]))


def test_backoff_is_exponential_with_jitter() -> None:
    policy = Fallbacks(backoff_ms=200)
    for retry, full in ((1, 0.2), (2, 0.4), (3, 0.8)):
        waits = [backoff_s(policy, retry) for _ in range(200)]
        assert all(full / 2 <= w <= full for w in waits)
        assert len(set(waits)) > 100  # drawn, not fixed: calls refused together spread out


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the precise one wins
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past: now
        ({"retry-after": "soon"}, None),
        ({"retry-after-ms": "-5"}, None),
        ({"retry-after-ms": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_headers(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_s(headers) == expected
