"""The fake's Responses API, embeddings and Message Batches, driven through the official SDKs."""

from __future__ import annotations

import base64
import json
import math
import struct
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from spendgate.fake_upstream import FakeSettings, FakeUpstream

HAIKU = "claude-haiku-4-5"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(FakeSettings(output_tokens=24)) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gpt(fake: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.openai_url, api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def claude(fake: FakeUpstream) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.url, api_key="sk-ant-test", max_retries=0) as client:
        yield client


def tokens(*texts: str) -> int:
    return max(1, math.ceil(sum(map(len, texts)) / 4))


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    """Each event's data, checking that its `event:` line names its type."""
    out = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        data = json.loads(lines["data"])
        assert lines["event"] == data["type"]
        out.append(data)
    return out


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> bytes:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"content-type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


# ---- Responses API --------------------------------------------------------------------------------


def test_response_json_usage_counts_reasoning_in_output(gpt: openai.OpenAI) -> None:
    prompt = "Summarise the design document in three bullet points."
    reply = gpt.responses.create(
        model="gpt-5",
        instructions="Be brief.",
        input=prompt,
        reasoning={"summary": "auto"},
        include=["reasoning.encrypted_content"],
    )
    assert reply.status == "completed" and reply.output_text
    usage = reply.usage
    assert usage is not None
    assert usage.input_tokens == tokens("Be brief.", prompt)
    assert (usage.output_tokens, usage.output_tokens_details.reasoning_tokens) == (24, 12)
    assert usage.total_tokens == usage.input_tokens + 24
    reasoning = reply.output[0]
    assert reasoning.type == "reasoning" and reasoning.encrypted_content and reasoning.summary


def test_response_stream_events_in_order_with_usage_only_at_the_end(fake: FakeUpstream) -> None:
    raw = post(f"{fake.openai_url}/responses", {"model": "gpt-4.1", "input": "hello", "stream": True})
    events = sse_events(raw)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed" and "response.output_text.delta" in kinds
    assert all(e.get("response", {}).get("usage") is None for e in events[:-1])
    usage = events[-1]["response"]["usage"]
    assert usage["input_tokens"] == tokens("hello") and usage["output_tokens"] == 24
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == events[-1]["response"]["output"][0]["content"][0]["text"]


def test_response_stream_through_the_sdk(gpt: openai.OpenAI) -> None:
    with gpt.responses.stream(model="gpt-5", input=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert final.output_text == text and final.usage is not None
    assert final.usage.output_tokens_details.reasoning_tokens == 12


def test_max_output_tokens_ends_incomplete_with_usage(fake: FakeUpstream) -> None:
    body = {"model": "gpt-4.1", "input": "x", "stream": True, "max_output_tokens": 10}
    last = sse_events(post(f"{fake.openai_url}/responses", body))[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert last["response"]["usage"]["output_tokens"] == 10


@pytest.mark.parametrize(
    ("mode", "last_type"), [("stream-error", "error"), ("stream-failed", "response.failed")]
)
def test_stream_error_and_failed_modes_carry_no_usage(fake: FakeUpstream, mode: str, last_type: str) -> None:
    body = {"model": "gpt-4.1", "input": "x", "stream": True}
    events = sse_events(post(f"{fake.openai_url}/responses", body, {"x-fake-mode": mode}))
    assert events[-1]["type"] == last_type
    assert not any(e.get("response", {}).get("usage") for e in events)
    assert [e["type"] for e in events].count("response.output_text.delta") == 2


def test_stream_cut_mode(gpt: openai.OpenAI) -> None:
    seen: list[str] = []
    with pytest.raises(openai.APIError):
        stream = gpt.responses.create(
            model="gpt-4.1", input="x", stream=True, extra_headers={"x-fake-mode": "stream-cut"}
        )
        seen.extend(event.type for event in stream)
    assert "response.completed" not in seen


def test_usage_override_and_prompt_cache(gpt: openai.OpenAI) -> None:
    override = {"input_tokens": 5000, "input_tokens_details": {"cached_tokens": 4096}}
    reply = gpt.responses.create(
        model="gpt-4.1", input="x", extra_headers={"x-fake-usage": json.dumps(override)}
    )
    assert reply.usage is not None and reply.usage.input_tokens_details.cached_tokens == 4096
    assert reply.usage.total_tokens == 5000 + 24
    long_prompt = "lorem ipsum dolor sit amet " * 300
    first = gpt.responses.create(model="gpt-4.1", input=long_prompt, store=False)
    second = gpt.responses.create(model="gpt-4.1", input=long_prompt, store=False)
    assert first.usage is not None and second.usage is not None
    assert first.usage.input_tokens_details.cached_tokens == 0
    assert second.usage.input_tokens_details.cached_tokens == first.usage.input_tokens // 128 * 128


def test_retrieve_delete_and_not_found_in_openai_format(gpt: openai.OpenAI) -> None:
    reply = gpt.responses.create(model="gpt-4.1", input="keep me")
    assert gpt.responses.retrieve(reply.id).output_text == reply.output_text
    gpt.responses.delete(reply.id)
    with pytest.raises(openai.NotFoundError) as caught:
        gpt.responses.retrieve(reply.id)
    assert isinstance(caught.value.body, dict) and reply.id in caught.value.body["message"]
    unstored = gpt.responses.create(model="gpt-4.1", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        gpt.responses.retrieve(unstored.id)


def test_background_response_completes_on_retrieve_or_is_cancelled(gpt: openai.OpenAI) -> None:
    queued = gpt.responses.create(model="gpt-4.1", input="later", background=True)
    assert queued.status == "queued" and queued.usage is None
    done = gpt.responses.retrieve(queued.id)
    assert done.status == "completed" and done.usage is not None
    other = gpt.responses.create(model="gpt-4.1", input="never", background=True)
    assert gpt.responses.cancel(other.id).status == "cancelled"
    foreground = gpt.responses.create(model="gpt-4.1", input="now")
    with pytest.raises(openai.BadRequestError):
        gpt.responses.cancel(foreground.id)


def test_input_tokens(gpt: openai.OpenAI) -> None:
    counted = gpt.responses.input_tokens.count(model="gpt-5", input="hello there", instructions="be kind")
    assert counted.input_tokens == tokens("be kind", "hello there")


@pytest.mark.parametrize(
    ("mode", "error", "status"),
    [
        ("error-400", openai.BadRequestError, 400),
        ("error-401", openai.AuthenticationError, 401),
        ("error-429", openai.RateLimitError, 429),
        ("error-500", openai.InternalServerError, 500),
    ],
)
def test_responses_error_modes(
    gpt: openai.OpenAI, mode: str, error: type[openai.APIStatusError], status: int
) -> None:
    with pytest.raises(error) as caught:
        gpt.responses.create(model="gpt-4.1", input="x", extra_headers={"x-fake-mode": mode})
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict) and {"message", "type", "code"} <= caught.value.body.keys()


def test_responses_bad_input(gpt: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="input"):
        gpt.responses.create(model="gpt-4.1", input=42)  # type: ignore[arg-type]


# ---- embeddings -----------------------------------------------------------------------------------


def test_embeddings_base64_default_of_the_sdk(gpt: openai.OpenAI, fake: FakeUpstream) -> None:
    reply = gpt.embeddings.create(model="text-embedding-3-small", input=["first text", "second one here"])
    assert [len(d.embedding) for d in reply.data] == [1536, 1536]
    assert math.isclose(sum(v * v for v in reply.data[0].embedding), 1.0, rel_tol=1e-4)
    assert reply.usage.prompt_tokens == tokens("first text") + tokens("second one here")
    sent = json.loads(fake.requests[-1].body)
    assert sent["encoding_format"] == "base64"  # what the SDK asks for, decoded by it


def test_embeddings_floats_dimensions_and_token_arrays(fake: FakeUpstream) -> None:
    body = {"model": "text-embedding-3-large", "input": [[1, 2, 3], [4, 5]], "dimensions": 8}
    reply = json.loads(post(f"{fake.openai_url}/embeddings", body))
    assert [len(d["embedding"]) for d in reply["data"]] == [8, 8]
    assert reply["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    packed = {**body, "encoding_format": "base64"}
    raw = json.loads(post(f"{fake.openai_url}/embeddings", packed))["data"][0]["embedding"]
    decoded = struct.unpack("<8f", base64.b64decode(raw))
    assert all(
        math.isclose(a, b, rel_tol=1e-6) for a, b in zip(decoded, reply["data"][0]["embedding"], strict=True)
    )


def test_embeddings_bad_input(gpt: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        gpt.embeddings.create(model="text-embedding-3-small", input="")


# ---- Message Batches ------------------------------------------------------------------------------


def request(custom_id: str, text: str, **params: Any) -> dict[str, Any]:
    body = {"model": HAIKU, "max_tokens": 100, "messages": [{"role": "user", "content": text}], **params}
    return {"custom_id": custom_id, "params": body}


def test_batch_lifecycle_with_batch_usage(claude: anthropic.Anthropic) -> None:
    created = claude.messages.batches.create(
        requests=[
            request("a", "first question"),
            request("b", "second", max_tokens=5),
            request("bad", "x", max_tokens=0),
        ]
    )
    assert created.processing_status == "in_progress" and created.request_counts.processing == 3
    assert created.results_url is None
    batch = claude.messages.batches.retrieve(created.id)
    assert batch.processing_status == "ended" and batch.ended_at is not None
    assert (batch.request_counts.succeeded, batch.request_counts.errored) == (2, 1)
    assert batch.results_url and batch.results_url.startswith("http://127.0.0.1:")
    results = {r.custom_id: r.result for r in claude.messages.batches.results(created.id)}
    assert results["bad"].type == "errored"
    first, second = results["a"], results["b"]
    assert first.type == "succeeded" and second.type == "succeeded"
    assert first.message.usage.service_tier == "batch"
    assert (first.message.usage.input_tokens, first.message.usage.output_tokens) == (
        tokens("first question"),
        24,
    )
    assert second.message.usage.output_tokens == 5
    assert created.id in [b.id for b in claude.messages.batches.list(limit=100)]
    assert claude.messages.batches.delete(created.id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.batches.retrieve(created.id)


def test_batch_in_progress_then_cancelled(claude: anthropic.Anthropic) -> None:
    created = claude.messages.batches.create(
        requests=[request("a", "x"), request("b", "y")], extra_headers={"x-fake-batch-ms": "60000"}
    )
    assert claude.messages.batches.retrieve(created.id).processing_status == "in_progress"
    with pytest.raises(anthropic.AnthropicError):
        list(claude.messages.batches.results(created.id))  # no results_url yet
    assert claude.messages.batches.cancel(created.id).processing_status == "canceling"
    ended = claude.messages.batches.retrieve(created.id)
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 2
    assert {r.result.type for r in claude.messages.batches.results(created.id)} == {"canceled"}


def test_batch_ends_after_its_delay(claude: anthropic.Anthropic) -> None:
    created = claude.messages.batches.create(
        requests=[request("a", "x")], extra_headers={"x-fake-batch-ms": "200"}
    )
    assert claude.messages.batches.retrieve(created.id).processing_status == "in_progress"
    time.sleep(0.25)
    assert claude.messages.batches.retrieve(created.id).processing_status == "ended"


def test_batch_list_pages(claude: anthropic.Anthropic) -> None:
    ids = [claude.messages.batches.create(requests=[request("a", "x")]).id for _ in range(3)]
    page = claude.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[::-1][:2] and page.has_more
    rest = claude.messages.batches.list(limit=2, after_id=page.data[-1].id)
    assert rest.data[0].id == ids[0]


def test_batch_create_errors(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="duplicate"):
        claude.messages.batches.create(requests=[request("a", "x"), request("a", "y")])
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.batches.create(requests=[])
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.batches.create(
            requests=[request("a", "x")], extra_headers={"x-fake-mode": "error-429"}
        )


def test_batch_results_cut_mode(claude: anthropic.Anthropic) -> None:
    created = claude.messages.batches.create(requests=[request(f"r{i}", "x") for i in range(4)])
    claude.messages.batches.retrieve(created.id)
    seen: list[str] = []
    with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError)):
        for result in claude.messages.batches.results(
            created.id, extra_headers={"x-fake-mode": "stream-cut"}
        ):
            seen.append(result.custom_id)
    assert len(seen) < 4
