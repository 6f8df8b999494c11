"""The Anthropic API through Spendgate, driven by the official SDK over real HTTP."""

from __future__ import annotations

import contextlib
import json
import logging
import time

import anthropic
import httpx
import pytest

from tests.conftest import PROVIDER_ANTHROPIC_KEY, RunningGateway

EXACT_USAGE = {
    "input_tokens": 1000,
    "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 3000},
    "cache_read_input_tokens": 4000,
    "output_tokens": 500,
}
# Sonnet 4.6 list prices per MTok: input 3, 5m write 3.75, 1h write 6, read 0.30, output 15.
SONNET_EXACT_NANOS = (1000 * 3 + 2000 * 3.75 + 3000 * 6 + 4000 * 0.30 + 500 * 15) * 1000


def assert_cut(exc: BaseException) -> None:
    """The SDK saw the provider's cut: an aborted body, not a clean end of stream."""
    assert isinstance(exc, anthropic.APIError | httpx.HTTPError) or "incomplete" in str(exc), repr(exc)


def client(gateway: RunningGateway, key: str | None = None, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gateway.url, api_key=key or gateway.key, max_retries=0, default_headers=headers or None
    )


def ask(
    c: anthropic.Anthropic, model: str = "claude-sonnet-4-6", **kwargs: object
) -> anthropic.types.Message:
    return c.messages.create(
        model=model,
        max_tokens=1024,
        messages=[{"role": "user", "content": "Review this diff"}],
        **kwargs,  # type: ignore[arg-type]
    )


def test_json_call_is_metered_exactly_and_attributed(gateway: RunningGateway) -> None:
    c = client(gateway, **{"x-fake-usage": json.dumps(EXACT_USAGE)})
    message = ask(c)
    assert message.content[0].type == "text" and message.content[0].text
    assert message.usage.cache_read_input_tokens == 4000

    [row] = gateway.rows()
    assert (row["input_tokens"], row["cache_write_5m_tokens"], row["cache_write_1h_tokens"]) == (
        1000,
        2000,
        3000,
    )
    assert (row["cache_read_tokens"], row["output_tokens"]) == (4000, 500)
    assert row["cost_nanos"] == SONNET_EXACT_NANOS == 37_200_000
    assert "claude-sonnet-4-6" in row["price_ref"]
    assert (row["team_id"], row["user_id"], row["key_id"]) == (
        gateway.team_id,
        gateway.user_id,
        gateway.key_id,
    )
    assert row["cost_center"] == "CC-100"
    # no use case declared: named by the use-case rules from the SDK's user agent (docs/attribution.md)
    assert (row["use_case"], row["use_case_source"]) == ("chat", "inferred:sdk-chat")
    assert row["status"] == "ok" and row["status_code"] == 200
    assert row["streamed"] == 0 and row["estimated"] == 0
    assert row["requested_model"] == row["upstream_model"] == "claude-sonnet-4-6"
    assert row["started_at"] <= row["first_byte_at"] <= row["ended_at"]
    assert row["user_agent"].startswith("Anthropic/Python")


def test_streamed_call_costs_the_same_as_json(gateway: RunningGateway) -> None:
    c = client(gateway, **{"x-fake-usage": json.dumps(EXACT_USAGE)})
    with c.messages.stream(
        model="claude-sonnet-4-6", max_tokens=1024, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.usage.output_tokens == 500
    [row] = gateway.rows()
    assert row["streamed"] == 1 and row["estimated"] == 0 and row["status"] == "ok"
    assert row["cost_nanos"] == SONNET_EXACT_NANOS
    assert row["first_byte_at"] is not None


def test_thinking_tokens_are_billed_as_output(gateway: RunningGateway) -> None:
    usage = {"input_tokens": 100, "output_tokens": 3000}
    c = client(gateway, **{"x-fake-usage": json.dumps(usage)})
    message = c.messages.create(
        model="claude-opus-4-6",
        max_tokens=8000,
        thinking={"type": "adaptive"},
        messages=[{"role": "user", "content": "design the system"}],
    )
    assert message.content[0].type == "thinking"
    [row] = gateway.rows()
    assert row["output_tokens"] == 3000
    assert row["cost_nanos"] == (100 * 5 + 3000 * 25) * 1000  # Opus 4.6: $5 in, $25 out


def test_cache_reads_are_priced_at_a_tenth_not_full_input(gateway: RunningGateway) -> None:
    usage = {"input_tokens": 10, "cache_read_input_tokens": 100_000, "output_tokens": 10}
    ask(client(gateway, **{"x-fake-usage": json.dumps(usage)}), model="claude-haiku-4-5")
    [row] = gateway.rows()
    assert row["cost_nanos"] == (10 * 1 + 100_000 * 0.10 + 10 * 5) * 1000  # $0.01006, not $0.1


def test_long_context_tier_bills_the_whole_call_at_the_higher_rate(gateway: RunningGateway) -> None:
    usage = {"input_tokens": 150_000, "cache_read_input_tokens": 60_000, "output_tokens": 1000}
    # Raw HTTP: the SDK warns on Sonnet 4.5, which is the model that still has the 200K tier.
    response = httpx.post(
        f"{gateway.url}/v1/messages",
        json={
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "x"}],
        },
        headers={
            "x-api-key": gateway.key,
            "anthropic-version": "2023-06-01",
            "x-fake-usage": json.dumps(usage),
        },
    )
    assert response.status_code == 200
    [row] = gateway.rows()
    # over 200K input tokens, Sonnet 4.5 bills $6 in, $0.60 cache read, $22.50 out
    assert row["cost_nanos"] == (150_000 * 6 + 60_000 * 0.6 + 1000 * 22.5) * 1000
    assert row["pricing_tier"] == "long_context"


def test_headers_and_body_fields_pass_through_untouched(gateway: RunningGateway, fake: object) -> None:
    c = client(gateway)
    system = [
        {"type": "text", "text": "first"},
        {"type": "text", "text": "second", "cache_control": {"type": "ephemeral"}},
    ]
    c.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=64,
        system=system,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={
            "anthropic-beta": "future-feature-2099-01-01",
            "anthropic-version": "2023-06-01",
            "x-claude-code-session-id": "sess-1",
        },
        extra_body={"x_future_field": {"nested": [1, 2, 3]}},
        extra_query={"beta": "true"},
    )
    sent = fake.requests[-1]  # type: ignore[attr-defined]
    assert sent.path == "/v1/messages" and "beta=true" in sent.query
    assert sent.headers["anthropic-beta"] == "future-feature-2099-01-01"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["x-api-key"] == PROVIDER_ANTHROPIC_KEY
    assert all(gateway.key not in value for value in sent.headers.values())
    body = json.loads(sent.body)
    assert body["x_future_field"] == {"nested": [1, 2, 3]}
    assert body["system"] == system
    [row] = gateway.rows()
    assert row["session_id"] == "sess-1"


def test_unknown_sse_events_and_pings_reach_the_client(gateway: RunningGateway) -> None:
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 32,
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    headers = {"x-api-key": gateway.key, "anthropic-version": "2023-06-01", "x-fake-mode": "unknown-event"}
    with httpx.stream("POST", f"{gateway.url}/v1/messages", json=body, headers=headers) as response:
        raw = response.read().decode()
    assert response.status_code == 200
    assert "event: x_future_event" in raw and "event: ping" in raw and "event: message_stop" in raw
    [row] = gateway.rows()
    assert row["status"] == "ok" and row["estimated"] == 0 and row["output_tokens"] > 0


@pytest.mark.parametrize(
    ("mode", "status", "error_type", "exc"),
    [
        ("error-429", 429, "rate_limit_error", anthropic.RateLimitError),
        ("error-529", 529, "overloaded_error", anthropic.InternalServerError),
        ("error-500", 500, "api_error", anthropic.InternalServerError),
        ("error-400", 400, "invalid_request_error", anthropic.BadRequestError),
    ],
)
def test_upstream_errors_come_back_unchanged(
    gateway: RunningGateway, fake: object, mode: str, status: int, error_type: str, exc: type[Exception]
) -> None:
    with pytest.raises(exc):
        ask(client(gateway, **{"x-fake-mode": mode}))
    body = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    via_gateway = httpx.post(
        f"{gateway.url}/v1/messages",
        json=body,
        headers={"x-api-key": gateway.key, "anthropic-version": "2023-06-01", "x-fake-mode": mode},
    )
    direct = httpx.post(
        f"{fake.url}/v1/messages",
        json=body,  # type: ignore[attr-defined]
        headers={"x-api-key": PROVIDER_ANTHROPIC_KEY, "anthropic-version": "2023-06-01", "x-fake-mode": mode},
    )
    assert via_gateway.status_code == direct.status_code == status
    strip = lambda r: {k: v for k, v in r.json().items() if k != "request_id"}  # noqa: E731
    assert strip(via_gateway) == strip(direct)
    assert via_gateway.json()["error"]["type"] == error_type
    if status == 429:
        assert via_gateway.headers["retry-after"] == "1"
    rows = gateway.rows()
    assert len(rows) == 2
    assert all(r["status"] == "upstream_error" and r["error_type"] == error_type for r in rows)
    assert all(r["cost_nanos"] == 0 and r["status_code"] == status for r in rows)


def test_error_event_after_200_is_recorded(gateway: RunningGateway) -> None:
    c = client(gateway, **{"x-fake-mode": "stream-error"})
    with (
        pytest.raises(anthropic.APIStatusError),
        c.messages.stream(
            model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "x"}]
        ) as s,
    ):
        for _ in s.text_stream:
            pass
    [row] = gateway.rows()
    assert row["status"] == "stream_error" and row["error_type"] == "overloaded_error"
    assert row["input_tokens"] > 0  # message_start's input was seen and billed


def test_cut_stream_is_estimated_never_zero(gateway: RunningGateway) -> None:
    usage = {"input_tokens": 5000, "output_tokens": 400}
    c = client(gateway, **{"x-fake-mode": "stream-cut", "x-fake-usage": json.dumps(usage)})
    with (
        pytest.raises(Exception) as cut,
        c.messages.stream(
            model="claude-haiku-4-5", max_tokens=512, messages=[{"role": "user", "content": "x"}]
        ) as s,
    ):
        for _ in s.text_stream:
            pass
    assert_cut(cut.value)
    [row] = gateway.rows()
    assert row["estimated"] == 1
    assert row["input_tokens"] == 5000  # from message_start, exact
    assert row["output_tokens"] > 0
    assert row["cost_nanos"] > 5000 * 1 * 1000
    assert row["status"] in {"upstream_cut", "stream_incomplete"}


def test_tags_header_beats_metadata_beats_key_defaults(gateway: RunningGateway) -> None:
    key = gateway.mint_key(
        name="ci-bot", team="platform", use_case="batch", tags={"repo": "infra", "env": "ci"}
    )
    ask(client(gateway, key))
    ask(client(gateway, key, **{"x-spendgate-tags": "use_case=code-review,repo=api"}))
    first, second = gateway.rows()
    assert first["use_case"] == "batch" and first["tags"] == {"repo": "infra", "env": "ci"}
    assert second["use_case"] == "code-review" and second["tags"] == {"repo": "api", "env": "ci"}


def test_count_tokens_models_and_hello(gateway: RunningGateway) -> None:
    c = client(gateway)
    counted = c.messages.count_tokens(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "x" * 400}]
    )
    assert counted.input_tokens >= 100
    ids = [m.id for m in c.models.list()]
    assert "claude-sonnet-4-6" in ids
    assert httpx.head(f"{gateway.url}/api/hello").status_code == 200
    assert gateway.rows() == []  # free endpoints leave no ledger rows


def test_secrets_never_reach_the_client(gateway: RunningGateway) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/messages",
        json={"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": gateway.key, "anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 200
    everything = response.text + json.dumps(dict(response.headers))
    assert PROVIDER_ANTHROPIC_KEY not in everything and gateway.key not in everything
    assert response.headers["x-spendgate-request-id"] == gateway.rows()[0]["request_id"]


def test_chunks_are_forwarded_as_they_arrive(gateway: RunningGateway) -> None:
    """With 150 ms between upstream events, the first event must reach the client long before the end."""
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    headers = {
        "x-api-key": gateway.key,
        "anthropic-version": "2023-06-01",
        "x-fake-chunk-delay-ms": "150",
        "x-fake-output-tokens": "8",
    }
    started = time.monotonic()
    arrivals: list[float] = []
    with httpx.stream(
        "POST", f"{gateway.url}/v1/messages", json=body, headers=headers, timeout=30
    ) as response:
        for line in response.iter_lines():
            if line.startswith("event:"):
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) >= 6
    # Events trickle in: the spread between first and last is most of the stream's duration.
    assert arrivals[-1] - arrivals[0] >= 0.15 * (len(arrivals) - 2)


def test_client_that_leaves_mid_stream_is_recorded_and_the_upstream_stops(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    """The client hangs up after the first event: the call is billed as far as it went, and logged
    as a disconnect rather than an error, well before the slow upstream would have finished."""
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    headers = {
        "x-api-key": gateway.key,
        "anthropic-version": "2023-06-01",
        "x-fake-chunk-delay-ms": "300",
        "x-fake-output-tokens": "20",
    }
    started = time.monotonic()
    with httpx.stream(
        "POST", f"{gateway.url}/v1/messages", json=body, headers=headers, timeout=30
    ) as response:
        for line in response.iter_lines():
            if line.startswith("event:"):
                break
    deadline = time.monotonic() + 3  # the whole stream would take 20+ events x 300 ms
    while not gateway.rows() and time.monotonic() < deadline:
        time.sleep(0.02)
    [row] = gateway.rows()
    assert time.monotonic() - started < 3
    assert row["status"] == "client_disconnected" and row["error_type"] == "client_disconnected"
    assert row["estimated"] == 1 and row["input_tokens"] > 0
    assert "Exception in ASGI application" not in caplog.text
    # The gateway keeps serving on its other connections.
    ok = httpx.post(f"{gateway.url}/v1/messages", json={**body, "stream": False}, headers=headers)
    assert ok.status_code == 200


def test_no_secret_reaches_the_logs(gateway: RunningGateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for mode in ("ok", "error-429", "stream-cut", "stream-error"):
        headers = {"x-api-key": gateway.key, "anthropic-version": "2023-06-01", "x-fake-mode": mode}
        body = {
            "model": "claude-haiku-4-5",
            "max_tokens": 16,
            "stream": mode.startswith("stream"),
            "messages": [{"role": "user", "content": "x"}],
        }
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{gateway.url}/v1/messages", json=body, headers=headers)
    httpx.post(f"{gateway.url}/v1/messages", json={}, headers={"x-api-key": gateway.key + "x"})
    assert len(gateway.rows()) == 4
    assert caplog.text  # something was logged (the cut stream at least)
    assert gateway.key not in caplog.text and PROVIDER_ANTHROPIC_KEY not in caplog.text
