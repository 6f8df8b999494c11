"""The Responses API meters, fed directly: the fake's real streams, split at every byte boundary."""

from __future__ import annotations

import itertools
import json
import urllib.request
from collections.abc import Iterator

import pytest

from spendgate.fake_upstream import FakeUpstream
from spendgate.pricing import Usage
from spendgate.providers.base import Metered
from spendgate.providers.openai_embeddings import OpenAIEmbeddingsProvider
from spendgate.providers.openai_responses import OpenAIResponsesProvider, ResponsesStreamMeter

USAGE = {
    "input_tokens": 9000,
    "input_tokens_details": {"cached_tokens": 6000, "cache_write_tokens": 500},
    "output_tokens": 700,
    "output_tokens_details": {"reasoning_tokens": 400},
}
EXPECTED = Usage(
    input_tokens=2500,
    cache_write_5m_tokens=500,
    cache_read_tokens=6000,
    output_tokens=700,
    reasoning_tokens=400,
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


def fetch(fake: FakeUpstream, mode: str = "ok", **body: object) -> bytes:
    payload = {"model": "gpt-5", "input": "hello", "stream": True, **body}
    headers = {"content-type": "application/json", "x-fake-mode": mode, "x-fake-usage": json.dumps(USAGE)}
    request = urllib.request.Request(f"{fake.openai_url}/responses", json.dumps(payload).encode(), headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


def meter_in_pieces(stream: bytes, *cuts: int) -> tuple[Metered, bytes, bool]:
    meter = ResponsesStreamMeter()
    bounds = [0, *cuts, len(stream)]
    out = b"".join(meter.feed(stream[a:b]) for a, b in itertools.pairwise(bounds))
    finished = meter.finished
    out += meter.flush()
    return meter.result(), out, finished


def test_completed_stream_metered_exactly_at_every_split(fake: FakeUpstream) -> None:
    stream = fetch(fake)
    whole, out, finished = meter_in_pieces(stream)
    assert out == stream and finished  # passed through unchanged
    assert whole.usage == EXPECTED and whole.complete and not whole.estimated
    assert whole.response_model == "gpt-5" and whole.error_type is None
    for cut in range(1, len(stream)):
        assert meter_in_pieces(stream, cut)[0] == whole, cut


def test_crlf_and_byte_by_byte(fake: FakeUpstream) -> None:
    stream = fetch(fake).replace(b"\n", b"\r\n")
    result, _, _ = meter_in_pieces(stream, *range(1, len(stream)))
    assert result.usage == EXPECTED and result.complete


def test_incomplete_response_is_exact(fake: FakeUpstream) -> None:
    result, _, finished = meter_in_pieces(fetch(fake, max_output_tokens=5))
    assert finished and result.usage == EXPECTED and not result.estimated


@pytest.mark.parametrize("mode", ["stream-cut", "stream-error", "stream-failed"])
def test_cut_error_or_failed_stream_is_estimated_never_zero(fake: FakeUpstream, mode: str) -> None:
    try:
        stream = fetch(fake, mode)
    except Exception as exc:  # a cut: keep what arrived
        partial = getattr(exc, "partial", None)
        assert partial is not None, exc
        stream = bytes(partial)
    for cut in range(1, len(stream), 7):
        result, _, _ = meter_in_pieces(stream, cut)
        assert result.estimated and not result.complete
        assert result.usage.output_tokens > 0  # two text deltas of four words: estimated from their text
        assert result.response_model == "gpt-5"
        if mode != "stream-cut":
            assert result.error_type == "server_error"


def test_json_meter_and_request_fields() -> None:
    provider = OpenAIResponsesProvider(None)
    body = {"model": "gpt-5", "usage": {**USAGE, "total_tokens": 9700}, "status": "completed"}
    assert provider.meter_json(200, json.dumps(body).encode()).usage == EXPECTED
    info = provider.parse(
        json.dumps(
            {
                "model": "gpt-5",
                "input": [{"role": "user", "content": "x"}],
                "max_output_tokens": 9,
                "stream": True,
            }
        ).encode(),
        "/v1/responses",
    )
    assert (info.model, info.stream, info.max_tokens) == ("gpt-5", True, 9)
    assert provider.estimate_input_tokens(info) > 0


def test_embeddings_meter() -> None:
    provider = OpenAIEmbeddingsProvider(None)
    body = {"model": "text-embedding-3-small", "data": [], "usage": {"prompt_tokens": 42, "total_tokens": 42}}
    result = provider.meter_json(200, json.dumps(body).encode())
    assert result.usage == Usage(input_tokens=42) and result.complete
