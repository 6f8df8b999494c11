"""The Anthropic and OpenAI stream meters, fed directly (like httpx's tests/test_decoders.py).

The streams are the fake provider's own, fetched over loopback: whole, with an error event after
the 200, and cut mid-body. Each is fed split at every byte boundary (and byte by byte): the usage,
the result and the bytes relayed to the client must not depend on where the network split it.
"""

from __future__ import annotations

import itertools
import json
import urllib.request
from collections.abc import Iterable, Iterator
from http.client import IncompleteRead
from typing import Any

import pytest

from spendgate.fake_upstream import FakeUpstream
from spendgate.pricing import Usage
from spendgate.providers.anthropic import AnthropicProvider
from spendgate.providers.base import Metered, Provider
from spendgate.providers.openai import OpenAIProvider

ANTHROPIC_USAGE = {
    "input_tokens": 1200,
    "cache_creation_input_tokens": 300,
    "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
    "cache_read_input_tokens": 4000,
    "output_tokens": 50,
    "server_tool_use": {"web_search_requests": 2},
}
ANTHROPIC_EXPECTED = Usage(
    input_tokens=1200,
    cache_write_5m_tokens=100,
    cache_write_1h_tokens=200,
    cache_read_tokens=4000,
    output_tokens=50,
    web_search_requests=2,
)
OPENAI_USAGE = {
    "prompt_tokens": 5000,
    "prompt_tokens_details": {"cached_tokens": 3072},
    "completion_tokens": 60,
    "completion_tokens_details": {"reasoning_tokens": 20},
    "total_tokens": 5060,
}
OPENAI_EXPECTED = Usage(input_tokens=1928, cache_read_tokens=3072, output_tokens=60, reasoning_tokens=20)
MESSAGES = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


def fetch(url: str, body: dict[str, Any], usage: dict[str, Any], mode: str = "ok") -> bytes:
    """The fake's stream as it comes off the wire (a cut stream: whatever arrived)."""
    headers = {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-fake-mode": mode,
        "x-fake-usage": json.dumps(usage),
    }
    request = urllib.request.Request(url, json.dumps({**body, "stream": True}).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read())
    except IncompleteRead as exc:
        return bytes(exc.partial)


def anthropic_stream(fake: FakeUpstream, mode: str = "ok", **body: Any) -> bytes:
    return fetch(f"{fake.url}/v1/messages", {**MESSAGES, **body}, ANTHROPIC_USAGE, mode)


def openai_stream(fake: FakeUpstream, mode: str = "ok") -> bytes:
    body = {**CHAT, "stream_options": {"include_usage": True}}
    return fetch(f"{fake.openai_url}/chat/completions", body, OPENAI_USAGE, mode)


def meter(
    provider: Provider, body: dict[str, Any], stream: bytes, cuts: Iterable[int]
) -> tuple[Metered, bytes, bool]:
    """(result, bytes relayed, finished before flush) for `stream` fed in the pieces `cuts` make."""
    info = provider.parse(json.dumps({**body, "stream": True}).encode(), provider.path)
    stream_meter = provider.stream_meter(info)
    bounds = [0, *cuts, len(stream)]
    out = b"".join(stream_meter.feed(stream[a:b]) for a, b in itertools.pairwise(bounds))
    finished = stream_meter.finished
    out += stream_meter.flush()
    return stream_meter.result(), out, finished


def at_every_split(provider: Provider, body: dict[str, Any], stream: bytes) -> tuple[Metered, bytes, bool]:
    """The whole stream's outcome, after checking that every two-piece split and byte-by-byte
    feeding give exactly the same result, relayed bytes and end-of-stream flag."""
    whole = meter(provider, body, stream, [])
    for cut in range(1, len(stream)):
        assert meter(provider, body, stream, [cut]) == whole, f"split at byte {cut}"
    assert meter(provider, body, stream, range(1, len(stream))) == whole, "byte by byte"
    return whole


ANTHROPIC = AnthropicProvider(None)


@pytest.mark.parametrize("extra", [{}, {"thinking": {"type": "enabled", "budget_tokens": 1024}}])
def test_anthropic_stream_is_metered_exactly_wherever_it_is_split(
    fake: FakeUpstream, extra: dict[str, Any]
) -> None:
    stream = anthropic_stream(fake, **extra)
    result, relayed, finished = at_every_split(ANTHROPIC, MESSAGES, stream)
    assert relayed == stream  # the client gets the provider's bytes unchanged
    assert finished and result.complete and not result.estimated and result.error_type is None
    assert result.usage == ANTHROPIC_EXPECTED
    assert result.response_model == "claude-haiku-4-5"


def test_anthropic_stream_with_crlf_line_ends(fake: FakeUpstream) -> None:
    stream = anthropic_stream(fake).replace(b"\n", b"\r\n")
    result, relayed, _ = at_every_split(ANTHROPIC, MESSAGES, stream)
    assert relayed == stream and result.usage == ANTHROPIC_EXPECTED and result.complete


def test_anthropic_error_after_the_200(fake: FakeUpstream) -> None:
    stream = anthropic_stream(fake, "stream-error")
    assert b"event: error" in stream
    result, relayed, finished = at_every_split(ANTHROPIC, MESSAGES, stream)
    assert relayed == stream
    assert finished  # the error event is the provider's last word: the call settles on it
    assert result.error_type == "overloaded_error" and not result.complete
    assert result.usage.input_tokens == 1200  # message_start had arrived
    assert result.usage.output_tokens > 0  # estimated from the deltas seen, never zero


def test_anthropic_cut_stream_is_estimated(fake: FakeUpstream) -> None:
    stream = anthropic_stream(fake, "stream-cut")
    assert b"message_stop" not in stream
    result, relayed, finished = at_every_split(ANTHROPIC, MESSAGES, stream)
    assert relayed == stream and not finished
    assert result.estimated and not result.complete and result.error_type is None
    assert result.usage.input_tokens == 1200 and result.usage.output_tokens > 0


def sse(name: str, data: dict[str, Any], spelling: str = "event: {name}\ndata: {data}") -> bytes:
    return spelling.format(name=name, data=json.dumps(data, separators=(",", ":"))).encode() + b"\n\n"


def usage_stream(delta_usage: dict[str, Any], spelling: str = "event: {name}\ndata: {data}") -> bytes:
    """A hand-written stream: message_start's usage, then message_delta's (`spelling` for both)."""
    start_usage = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 7,
        "cache_creation": {"ephemeral_5m_input_tokens": 3, "ephemeral_1h_input_tokens": 4},
        "cache_read_input_tokens": 5,
        "output_tokens": 1,
        "service_tier": "standard",
    }
    message = {"id": "msg_1", "type": "message", "model": "claude-haiku-4-5", "usage": start_usage}
    text = {"type": "text_delta", "text": "Hello " * 20}
    delta = {"type": "content_block_delta", "index": 0, "delta": text}
    return b"".join(
        [
            sse("message_start", {"type": "message_start", "message": message}, spelling),
            sse("ping", {"type": "ping"}),
            sse("content_block_start", {"type": "content_block_start", "index": 0}),
            sse("content_block_delta", delta),
            sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            sse("message_delta", {"type": "message_delta", "delta": {}, "usage": delta_usage}, spelling),
            sse("message_stop", {"type": "message_stop"}),
        ]
    )


@pytest.mark.parametrize(
    "spelling",
    [
        "event: {name}\ndata: {data}",  # the usual spelling: read without splitting the fields
        "event:{name}\ndata:{data}",
        "data: {data}\nevent: {name}",
        ": a comment\ndata: {data}",  # no event name: the payload's type says it
    ],
)
def test_anthropic_usage_split_across_events(spelling: str) -> None:
    """message_delta overrides what it carries and keeps the rest of message_start's usage; an
    old-style cache_creation_input_tokens alone is all 5-minute writes. Any spelling of the events."""
    only_output = usage_stream({"output_tokens": 30}, spelling)
    result, relayed, finished = at_every_split(ANTHROPIC, MESSAGES, only_output)
    assert relayed == only_output and finished and result.complete and not result.estimated
    expected = {"cache_write_5m_tokens": 3, "cache_write_1h_tokens": 4, "cache_read_tokens": 5}
    assert result.usage == Usage(input_tokens=10, output_tokens=30, **expected)
    assert result.response_model == "claude-haiku-4-5"
    overriding = {
        "input_tokens": 12,
        "cache_creation_input_tokens": 9,
        "server_tool_use": {"web_search_requests": 2},
        "output_tokens": 31,
        "service_tier": "batch",
    }
    result, _, _ = at_every_split(ANTHROPIC, MESSAGES, usage_stream(overriding, spelling))
    assert result.usage == Usage(
        input_tokens=12,
        cache_write_5m_tokens=9,
        cache_read_tokens=5,
        output_tokens=31,
        web_search_requests=2,
        batch=True,
    )


def test_anthropic_stream_cut_after_message_start_is_estimated_from_the_deltas() -> None:
    stream = usage_stream({"output_tokens": 30})
    cut = stream[: stream.index(b"event: message_delta")]
    result, _, finished = at_every_split(ANTHROPIC, MESSAGES, cut)
    assert not finished and result.estimated and not result.complete
    assert result.usage.input_tokens == 10 and result.usage.cache_read_tokens == 5
    assert result.usage.output_tokens > 1  # from the delta's size, not message_start's placeholder 1


def test_anthropic_stream_read_from_its_edges_agrees_with_every_event_read() -> None:
    """A whole stream in one chunk is read from its first and last events; fed byte by byte, every
    event is read. Odd events between the edges (a comment, a blank-line run, an unknown event)
    change neither the usage nor the end; what follows message_delta is still read."""
    stream = usage_stream({"output_tokens": 30})
    odd = b': keep-alive\n\nevent: unknown_thing\ndata: {"type":"unknown_thing"}\n\n\n\n'
    at = stream.index(b"event: content_block_delta")
    mixed = stream[:at] + odd + stream[at:]
    result, relayed, finished = at_every_split(ANTHROPIC, MESSAGES, mixed)
    assert relayed == mixed and finished and result.complete and not result.estimated
    assert result.usage.output_tokens == 30 and result.usage.cache_read_tokens == 5
    # A ping and a stop in another spelling after message_delta: the end is still seen.
    stop = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    ping = b'event: ping\ndata: {"type":"ping"}\n\n'
    late = stream.replace(stop, ping + b'event:message_stop\ndata:{"type":"message_stop"}\n\n')
    result, _, finished = at_every_split(ANTHROPIC, MESSAGES, late)
    assert finished and result.complete and result.usage.output_tokens == 30
    # A ping after message_delta and then nothing: usage known, but the stream did not end.
    unended = stream.replace(stop, ping)
    result, _, finished = at_every_split(ANTHROPIC, MESSAGES, unended)
    assert not finished and not result.complete and result.usage.output_tokens == 30


def test_anthropic_stream_with_an_unreadable_message_delta_is_estimated_from_every_event() -> None:
    """A message_delta that is not JSON brings no usage: the deltas between the edges are counted
    after all, as they are when the stream comes event by event."""
    stream = usage_stream({"output_tokens": 30})
    start = stream.index(b"event: message_delta\ndata: ") + len(b"event: message_delta\ndata: ")
    broken = stream[:start] + b"not json" + stream[stream.index(b"\n\n", start) :]
    result, _, finished = at_every_split(ANTHROPIC, MESSAGES, broken)
    assert finished and result.estimated and result.usage.output_tokens > 1
    assert result.usage.input_tokens == 10


OPENAI = OpenAIProvider(None)
ASKED = {**CHAT, "stream_options": {"include_usage": True}}  # the client asked for the usage chunk


def test_openai_stream_is_metered_exactly_wherever_it_is_split(fake: FakeUpstream) -> None:
    stream = openai_stream(fake)
    result, relayed, finished = at_every_split(OPENAI, ASKED, stream)
    assert relayed == stream
    assert finished and result.complete and not result.estimated and result.error_type is None
    assert result.usage == OPENAI_EXPECTED and result.response_model == "gpt-4o-mini"


def test_openai_usage_chunk_hidden_from_a_client_that_did_not_ask(fake: FakeUpstream) -> None:
    stream = openai_stream(fake)  # Spendgate always asks upstream for usage
    result, relayed, finished = at_every_split(OPENAI, CHAT, stream)
    assert finished and result.usage == OPENAI_EXPECTED
    assert b'"usage"' in stream and b'"usage"' not in relayed
    assert relayed.endswith(b"data: [DONE]\n\n")
    # Every other chunk reaches the client, in order.
    chunks = [e for e in stream.split(b"\n\n") if e and b'"choices":[]' not in e]
    assert relayed.count(b"data: ") == len(chunks)


def test_openai_error_after_the_200(fake: FakeUpstream) -> None:
    stream = openai_stream(fake, "stream-error")
    result, relayed, finished = at_every_split(OPENAI, ASKED, stream)
    assert relayed == stream and finished
    assert result.error_type == "service_unavailable" and not result.complete


def test_openai_cut_stream_is_estimated(fake: FakeUpstream) -> None:
    stream = openai_stream(fake, "stream-cut")
    assert b"[DONE]" not in stream
    result, relayed, finished = at_every_split(OPENAI, ASKED, stream)
    assert relayed == stream and not finished
    assert result.estimated and not result.complete
    assert result.usage.output_tokens > 0  # from the text seen; the prompt is estimated on settling


@pytest.mark.parametrize(
    "value", [0, -5, True, False, 1.5, "12", None, [], 1_000_000_001, 10**30], ids=repr
)
def test_anthropic_json_meter_drops_a_count_that_is_no_count(value: Any) -> None:
    """The JSON meter's inlined count check is `as_int`'s: a bool, a float, a negative number or
    one past MAX_TOKEN_COUNT is 0, in every usage field that carries a count."""
    from spendgate.providers.base import MAX_TOKEN_COUNT, as_int

    provider = AnthropicProvider(None)
    for field in ("input_tokens", "cache_read_input_tokens", "output_tokens", "cache_creation_input_tokens"):
        body = json.dumps({"model": "m", "usage": {"input_tokens": 7, field: value}}).encode()
        usage = provider.meter_json(200, body).usage
        got = {
            "input_tokens": usage.input_tokens,
            "cache_read_input_tokens": usage.cache_read_tokens,
            "output_tokens": usage.output_tokens,
            "cache_creation_input_tokens": usage.cache_write_5m_tokens,
        }[field]
        assert got == as_int(json.loads(json.dumps(value))) == 0, (field, value)
    for field in ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"):
        body = json.dumps({"usage": {"cache_creation": {field: value}}}).encode()
        usage = provider.meter_json(200, body).usage
        assert usage.cache_write_5m_tokens == usage.cache_write_1h_tokens == 0, (field, value)
    body = json.dumps({"usage": {"input_tokens": MAX_TOKEN_COUNT}}).encode()
    assert provider.meter_json(200, body).usage.input_tokens == MAX_TOKEN_COUNT


@pytest.mark.parametrize(
    ("model", "recorded"),
    [
        ("claude-haiku-4-5", "claude-haiku-4-5"),
        ("claude\x00-haiku\x1f\x85", "claude-haiku"),
        ("m" * 250, "m" * 200),
        (42, None),
        (None, None),
        ("", ""),
    ],
    ids=repr,
)
def test_anthropic_json_meter_cleans_the_model_name(model: Any, recorded: str | None) -> None:
    metered = AnthropicProvider(None).meter_json(200, json.dumps({"model": model, "usage": {}}).encode())
    assert metered.response_model == recorded
    assert metered == Metered(Usage(), recorded, False, True, None)


@pytest.mark.parametrize(
    ("model", "recorded"), [("claude\x00-x\x9f", "claude-x"), ("m" * 250, "m" * 200), (7, None)], ids=repr
)
def test_anthropic_stream_meter_cleans_the_model_name(model: Any, recorded: str | None) -> None:
    """message_start's model as clean_text keeps it; a usage that is not an object counts nothing."""
    from spendgate.providers.anthropic import AnthropicStreamMeter

    start = {"type": "message_start", "message": {"model": model, "usage": [1]}}
    delta = {"type": "message_delta", "usage": "x"}
    meter = AnthropicStreamMeter()
    for event in (start, delta, {"type": "message_stop"}):
        meter.feed(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
    assert meter.result() == Metered(Usage(), recorded, False, True, None)
