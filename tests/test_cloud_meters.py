"""The Bedrock and Vertex adapters' parts tested directly: event-stream meters fed real fake-upstream
streams split at every byte boundary, the model-id price mapping, and the optional-extra message."""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Iterator
from decimal import Decimal

import orjson
import pytest

from spendgate.errors import UnknownEndpoint
from spendgate.extras import EXTRAS, MissingExtra, require
from spendgate.fake_upstream import FakeUpstream, eventstream
from spendgate.pricing import Pricer, cost_of
from spendgate.providers.base import Metered
from spendgate.providers.bedrock import BedrockProvider, split_path
from spendgate.providers.vertex import VertexProvider, regional_base

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
USAGE = {
    "input_tokens": 120,
    "cache_read_input_tokens": 30,
    "cache_creation_input_tokens": 7,
    "output_tokens": 40,
}
INVOKE = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "hi"}],
}
CONVERSE = {
    "messages": [{"role": "user", "content": [{"text": "hello there"}]}],
    "inferenceConfig": {"maxTokens": 64},
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


def fetch(fake: FakeUpstream, action: str, body: object, **headers: str) -> bytes:
    request = urllib.request.Request(
        f"{fake.url}/model/{MODEL}/{action}",
        data=orjson.dumps(body),
        headers={"content-type": "application/json", "x-fake-usage": orjson.dumps(USAGE).decode(), **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read())
    except Exception as exc:  # a cut stream: whatever arrived
        partial = getattr(exc, "partial", None)
        if partial is None:
            raise
        return bytes(partial)


def meter_split(provider: BedrockProvider, action: str, stream: bytes, at: int) -> tuple[Metered, bytes]:
    info = provider.parse(
        orjson.dumps(CONVERSE if "converse" in action else INVOKE), f"/bedrock/model/{MODEL}/{action}"
    )
    meter = provider.stream_meter(info)
    relayed = meter.feed(stream[:at]) + meter.feed(stream[at:]) + meter.flush()
    return meter.result(), relayed


@pytest.mark.parametrize(
    ("action", "model"),
    [("invoke-with-response-stream", "claude-haiku-4-5-20251001"), ("converse-stream", None)],
)
def test_stream_meter_at_every_split(fake: FakeUpstream, action: str, model: str | None) -> None:
    stream = fetch(fake, action, CONVERSE if "converse" in action else INVOKE)
    provider = BedrockProvider("us-east-1")
    for at in range(len(stream) + 1):
        result, relayed = meter_split(provider, action, stream, at)
        assert relayed == stream  # bytes relayed unchanged
        assert not result.estimated and result.complete and result.error_type is None
        usage = result.usage
        tokens = (
            usage.input_tokens,
            usage.cache_read_tokens,
            usage.cache_write_5m_tokens,
            usage.output_tokens,
        )
        assert tokens == (120, 30, 7, 40)
        assert result.response_model == model  # the answer's model, where the stream names it


@pytest.mark.parametrize("action", ["invoke-with-response-stream", "converse-stream"])
def test_cut_stream_is_estimated_never_zero(fake: FakeUpstream, action: str) -> None:
    body = CONVERSE if "converse" in action else INVOKE
    stream = fetch(fake, action, body, **{"x-fake-mode": "stream-cut"})
    result, _ = meter_split(BedrockProvider("us-east-1"), action, stream, len(stream) // 2)
    assert result.estimated and not result.complete
    assert result.usage.output_tokens > 0


@pytest.mark.parametrize("action", ["invoke-with-response-stream", "converse-stream"])
def test_exception_message_ends_the_stream(fake: FakeUpstream, action: str) -> None:
    body = CONVERSE if "converse" in action else INVOKE
    stream = fetch(fake, action, body, **{"x-fake-mode": "stream-error"})
    provider = BedrockProvider("us-east-1")
    info = provider.parse(orjson.dumps(body), f"/bedrock/model/{MODEL}/{action}")
    meter = provider.stream_meter(info)
    meter.feed(stream)
    assert meter.finished
    assert meter.result().error_type == "modelStreamErrorException"


@pytest.mark.parametrize("where", ["prelude", "prelude CRC", "usage"])
def test_damaged_stream_is_relayed_and_estimated(fake: FakeUpstream, where: str) -> None:
    stream = bytearray(fetch(fake, "invoke-with-response-stream", INVOKE))
    # the first message's length or its prelude's CRC (message_start: the input tokens), or the
    # message_delta that carries the output tokens (its message CRC then fails)
    delta = stream.index(base64.b64encode(b'{"type":"message_delta"')[:20]) + 30
    at = {"prelude": 1, "prelude CRC": 9, "usage": delta}[where]
    stream[at] ^= 0x01
    result, relayed = meter_split(
        BedrockProvider("us-east-1"), "invoke-with-response-stream", bytes(stream), 0
    )
    assert relayed == bytes(stream)
    assert result.estimated and not result.complete


BEDROCK_HEADERS = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
EVENTS = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_???>>>",  # characters whose base64 holds a `/`
            "model": "claude-haiku-4-5-20251001",
            "usage": {**USAGE, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi???>>> there"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 40}},
    {"type": "message_stop"},
]


def invoke_stream(headers: dict[str, str], escape_slashes: bool = False) -> bytes:
    """An InvokeModelWithResponseStream answer written here, its chunk events with `headers`."""
    stream = b""
    for event in EVENTS:
        payload = orjson.dumps({"bytes": base64.b64encode(orjson.dumps(event)).decode(), "p": "abcd"})
        if escape_slashes:  # a JSON writer may escape `/`, which base64 uses
            payload = payload.replace(b"/", b"\\/")
        stream += eventstream.encode_message(headers, payload)
    return stream


@pytest.mark.parametrize(
    ("layout", "escape_slashes"),
    [("bedrock", False), ("bedrock", True), ("reordered", False), ("extra header", False)],
)
def test_chunk_events_in_any_header_layout(layout: str, escape_slashes: bool) -> None:
    """Bedrock's usual headers are recognised byte for byte; any other layout goes through
    botocore's parser: the usage reads the same either way."""
    headers = {
        "bedrock": BEDROCK_HEADERS,
        "reordered": dict(reversed(BEDROCK_HEADERS.items())),
        "extra header": {**BEDROCK_HEADERS, ":date": "now"},
    }[layout]
    stream = invoke_stream(headers, escape_slashes)
    assert not escape_slashes or b"\\/" in stream
    provider = BedrockProvider("us-east-1")
    for at in range(0, len(stream) + 1, 7):
        result, relayed = meter_split(provider, "invoke-with-response-stream", stream, at)
        assert relayed == stream
        assert not result.estimated and result.complete and result.error_type is None
        usage = result.usage
        assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (120, 30, 40)
        assert result.response_model == "claude-haiku-4-5-20251001"


def test_json_meters(fake: FakeUpstream) -> None:
    provider = BedrockProvider("us-east-1")
    invoke = provider.meter_json(200, fetch(fake, "invoke", INVOKE))
    converse = provider.meter_json(200, fetch(fake, "converse", CONVERSE))
    for result in (invoke, converse):
        assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.cache_read_tokens) == (
            120,
            40,
            30,
        )


def test_paths_and_endpoints() -> None:
    assert split_path(f"/bedrock/model/{MODEL}/invoke") == (MODEL, "invoke")
    arn = "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/abc123"
    assert split_path(f"/bedrock/model/{arn}/converse") == (arn, "converse")
    with pytest.raises(UnknownEndpoint):
        split_path(f"/bedrock/model/{MODEL}/delete")
    provider = BedrockProvider("eu-west-1")
    assert provider.base_url == "https://bedrock-runtime.eu-west-1.amazonaws.com"
    assert provider.control_url == "https://bedrock.eu-west-1.amazonaws.com"
    info = provider.parse(orjson.dumps(INVOKE), f"/bedrock/model/{MODEL}/invoke")
    assert provider.upstream_path(info, MODEL) == "/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/invoke"
    assert BedrockProvider("x", "http://127.0.0.1:1/").base_url == "http://127.0.0.1:1"
    assert regional_base("us-east5") == "https://us-east5-aiplatform.googleapis.com"
    assert regional_base("global") == "https://aiplatform.googleapis.com"
    vertex = VertexProvider()
    path = (
        "/vertex_ai/v1/projects/p1/locations/europe-west1/publishers/anthropic/models/"
        "claude-haiku-4-5@20251001:rawPredict"
    )
    vinfo = vertex.parse(b'{"anthropic_version":"vertex-2023-10-16","max_tokens":5,"messages":[]}', path)
    assert vinfo.model == "claude-haiku-4-5@20251001" and not vinfo.stream
    assert vertex.upstream_url(vinfo, "claude-sonnet-4-6") == (
        "https://europe-west1-aiplatform.googleapis.com/v1/projects/p1/locations/europe-west1"
        "/publishers/anthropic/models/claude-sonnet-4-6:rawPredict"
    )


# List prices in USD per million tokens (input, output), from the price sheet (pricing.md); Bedrock's
# regional and cross-region profiles of 4.5+ models cost 10% more than its global ones.
SHEET = {"haiku-4-5": (Decimal(1), Decimal(5)), "sonnet-4-5": (Decimal(3), Decimal(15))}
REGIONAL = Decimal("1.1")


@pytest.mark.parametrize(
    ("provider", "model", "family", "factor"),
    [
        ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "sonnet-4-5", REGIONAL),
        ("bedrock", "eu.anthropic.claude-haiku-4-5-20251001-v1:0", "haiku-4-5", REGIONAL),
        ("bedrock", "apac.anthropic.claude-sonnet-4-5-20250929-v1:0", "sonnet-4-5", REGIONAL),
        ("bedrock", "anthropic.claude-haiku-4-5-20251001-v1:0", "haiku-4-5", REGIONAL),
        ("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "sonnet-4-5", Decimal(1)),
        ("bedrock", "global.anthropic.claude-haiku-4-5-20251001-v1:0", "haiku-4-5", Decimal(1)),
        ("vertex", "claude-haiku-4-5@20251001", "haiku-4-5", Decimal(1)),
        ("vertex", "claude-sonnet-4-5@20250929", "sonnet-4-5", Decimal(1)),
    ],
)
def test_cloud_model_ids_price_from_the_price_data(
    provider: str, model: str, family: str, factor: Decimal
) -> None:
    price = Pricer().price(provider, model)
    assert price is not None, model
    inp, out = SHEET[family]
    assert price.input.base == inp * factor and price.output.base == out * factor
    assert price.cache_read.base == inp * factor / 10 and price.cache_write_5m.base == inp * factor * Decimal(
        "1.25"
    )
    from spendgate.pricing import Usage

    cost = cost_of(price, Usage(input_tokens=1000, output_tokens=100))
    assert cost.nanos == int((1000 * inp + 100 * out) * factor * 1000)  # USD/MTok -> nano-dollars per token


def test_unknown_bedrock_model_has_no_price() -> None:
    assert Pricer().price("bedrock", "arn:aws:bedrock:us-east-1:1:application-inference-profile/abc") is None


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(EXTRAS, "bedrock", ("spendgate_no_such_module",))
    with pytest.raises(MissingExtra, match=r"pip install 'spendgate\[bedrock\]'"):
        require("bedrock", "Amazon Bedrock support")
