"""The fake upstream, driven through the official SDKs the way a gateway's upstream would be."""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, MutableMapping
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from spendgate.fake_upstream import FakeSettings, FakeUpstream, RecordedRequest, create_fake_app
from spendgate.fake_upstream.streaming import StreamCut

USER = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def claude(fake: FakeUpstream) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.url, api_key="sk-ant-test", max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def gpt(fake: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.openai_url, api_key="sk-test", max_retries=0) as client:
        yield client


def raw(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None, method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def expected_tokens(*texts: str) -> int:
    return max(1, math.ceil(sum(map(len, texts)) / 4))


def mode(name: str) -> dict[str, str]:
    return {"x-fake-mode": name}


def ask(claude: anthropic.Anthropic, **overrides: Any) -> Any:
    """``messages.create`` with short defaults."""
    return claude.messages.create(
        **{"model": "claude-haiku-4-5", "max_tokens": 100, "messages": USER, **overrides}
    )


def chat(gpt: openai.OpenAI, **overrides: Any) -> Any:
    return gpt.chat.completions.create(**{"model": "gpt-4o", "messages": USER, **overrides})


# ---- Anthropic ------------------------------------------------------------------------------------


def test_anthropic_json_message(claude: anthropic.Anthropic) -> None:
    response = claude.messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=1000, system="Be brief.", messages=USER
    )
    assert response.headers["request-id"].startswith("req_")
    message = response.parse()
    assert message.id.startswith("msg_") and message.model == "claude-sonnet-4-6"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert [b.type for b in message.content] == ["text"]
    text = message.content[0].text
    assert text.startswith("This is a deterministic reply") and len(text.split()) == 24
    usage = message.usage
    assert usage.input_tokens == expected_tokens("Be brief.", USER[0]["content"])
    assert usage.output_tokens == 24 and usage.service_tier == "standard"
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (0, 0)
    assert usage.cache_creation is not None and usage.cache_creation.ephemeral_5m_input_tokens == 0


def test_anthropic_thinking_and_max_tokens(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="claude-opus-4-6",
        max_tokens=10,
        thinking={"type": "adaptive"},
        messages=USER,
        extra_headers={"x-fake-output-tokens": "100"},
    )
    assert [b.type for b in message.content] == ["thinking", "text"]
    thinking, text = message.content
    assert thinking.thinking.startswith("Let me think") and thinking.signature
    assert len(thinking.thinking.split()) + len(text.text.split()) == 10
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 10


def test_anthropic_stream(claude: anthropic.Anthropic) -> None:
    events = list(ask(claude, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]  # the SDK drops ping
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert kinds.count("content_block_delta") == 6  # 24 tokens, a few per delta
    start, delta = events[0], events[-2]
    assert start.type == "message_start" and delta.type == "message_delta"
    assert start.message.usage.output_tokens == 1
    assert start.message.usage.input_tokens == expected_tokens(USER[0]["content"])
    assert delta.usage.output_tokens == 24 and delta.delta.stop_reason == "end_turn"
    streamed = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert streamed == ask(claude).content[0].text


def test_anthropic_stream_wire_format(fake: FakeUpstream) -> None:
    body = {"model": "m", "max_tokens": 100, "stream": True, "messages": USER}
    headers = {"anthropic-version": "2023-06-01", "x-fake-mode": "unknown-event", "x-fake-output-tokens": "8"}
    status, response_headers, data = raw(
        fake.url + "/v1/messages?beta=true", json.dumps(body).encode(), headers
    )
    assert status == 200 and response_headers["content-type"].startswith("text/event-stream")
    frames = data.decode().split("\n\n")
    assert frames[-1] == "" and all(f.startswith("event: ") for f in frames[:-1])
    names = [f.split("\n")[0].removeprefix("event: ") for f in frames[:-1]]
    assert names[:3] == ["message_start", "x_future_event", "ping"]
    assert frames[1] == 'event: x_future_event\ndata: {"type":"x_future_event","payload":{"n":1}}'
    assert frames[-2] == 'event: message_stop\ndata: {"type":"message_stop"}'
    final = json.loads(frames[-3].split("data: ", 1)[1])
    assert final == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 8},
    }


def test_anthropic_unknown_event_tolerated_by_sdk(claude: anthropic.Anthropic) -> None:
    kwargs = {"model": "claude-sonnet-4-6", "max_tokens": 100, "messages": USER}
    with claude.messages.stream(**kwargs, extra_headers=mode("unknown-event")) as stream:
        message = stream.get_final_message()
    assert message.usage.output_tokens == 24 and message.content[0].type == "text"


def test_anthropic_usage_override_json_and_stream(claude: anthropic.Anthropic) -> None:
    override = {"input_tokens": 5, "output_tokens": 777, "cache_read_input_tokens": 40}
    override["cache_creation"] = {"ephemeral_1h_input_tokens": 9}
    headers = {"x-fake-usage": json.dumps(override)}
    usage = ask(claude, extra_headers=headers).usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) == (5, 777, 40)
    assert usage.cache_creation_input_tokens == 9  # derived from the nested split
    assert usage.cache_creation is not None and usage.cache_creation.ephemeral_5m_input_tokens == 0
    with claude.messages.stream(model="m", max_tokens=9, messages=USER, extra_headers=headers) as stream:
        final = stream.get_final_message().usage
    assert (final.input_tokens, final.output_tokens, final.cache_creation_input_tokens) == (5, 777, 9)


def test_anthropic_prompt_cache(claude: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": "You are a cache test. " * 50, "cache_control": {"type": "ephemeral"}}]
    prefix_tokens = expected_tokens(system[0]["text"])

    def usage(messages: list[Any], blocks: list[Any] = system) -> anthropic.types.Usage:
        return ask(claude, model="claude-sonnet-4-6", system=blocks, messages=messages).usage

    first, second = usage(USER), usage(USER)
    assert (first.cache_creation_input_tokens, first.cache_read_input_tokens) == (prefix_tokens, 0)
    assert first.cache_creation and first.cache_creation.ephemeral_5m_input_tokens == prefix_tokens
    assert first.input_tokens == expected_tokens(USER[0]["content"])
    assert (second.cache_creation_input_tokens, second.cache_read_input_tokens) == (0, prefix_tokens)
    assert second.input_tokens == first.input_tokens
    # A grown conversation with a moved breakpoint reads the old prefix and writes the new part.
    block = {"type": "text", "text": "x" * 400, "cache_control": {"type": "ephemeral"}}
    grown = usage([{"role": "user", "content": [block]}])
    assert grown.cache_read_input_tokens == prefix_tokens and grown.cache_creation_input_tokens == 100
    hour_block = {
        "type": "text",
        "text": "One hour. " * 40,
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
    }
    one_hour = usage(USER, [hour_block]).cache_creation
    assert one_hour and (one_hour.ephemeral_1h_input_tokens, one_hour.ephemeral_5m_input_tokens) == (100, 0)
    fresh = ask(claude, model="claude-opus-4-6", system=system).usage
    assert fresh.cache_read_input_tokens == 0  # the cache is per model


def test_anthropic_count_tokens_and_hello(claude: anthropic.Anthropic, fake: FakeUpstream) -> None:
    tools = [{"name": "lookup", "description": "Look up a city.", "input_schema": {"type": "object"}}]
    counted = claude.messages.count_tokens(model="claude-sonnet-4-6", messages=USER, tools=tools)
    tools_chars = sum(len(json.dumps(tool, separators=(",", ":"))) for tool in tools)  # each tool's JSON
    assert counted.input_tokens == math.ceil((tools_chars + len(USER[0]["content"])) / 4)
    status, _, body = raw(fake.url + "/api/hello", method="HEAD")
    assert (status, body) == (200, b"")


# ---- OpenAI ---------------------------------------------------------------------------------------


def test_openai_json_completion(gpt: openai.OpenAI) -> None:
    response = gpt.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    assert response.headers["x-request-id"].startswith("req_")
    completion = response.parse()
    assert completion.id.startswith("chatcmpl-") and completion.object == "chat.completion"
    assert completion.model == "gpt-4o" and completion.system_fingerprint == "fp_fake"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert choice.message.content is not None and len(choice.message.content.split()) == 24
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens == expected_tokens(USER[0]["content"])
    assert usage.completion_tokens == 24 and usage.total_tokens == usage.prompt_tokens + 24
    assert usage.completion_tokens_details and usage.completion_tokens_details.reasoning_tokens == 0


def test_openai_reasoning_model_and_cap(gpt: openai.OpenAI) -> None:
    completion = chat(gpt, model="o3", max_completion_tokens=10)
    usage = completion.usage
    assert usage is not None and usage.completion_tokens == 10
    assert usage.completion_tokens_details and usage.completion_tokens_details.reasoning_tokens == 5
    assert completion.choices[0].finish_reason == "length"
    assert len((completion.choices[0].message.content or "").split()) == 5


def test_openai_stream_usage_only_on_request(gpt: openai.OpenAI, fake: FakeUpstream) -> None:
    chunks = list(chat(gpt, model="gpt-4.1", stream=True))
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert len(text.split()) == 24
    with_usage = list(chat(gpt, model="gpt-4.1", stream=True, stream_options={"include_usage": True}))
    assert with_usage[-1].choices == [] and with_usage[-1].usage is not None
    assert with_usage[-1].usage.completion_tokens == 24 and len(with_usage) == len(chunks) + 1
    body = {"model": "gpt-4.1", "messages": USER, "stream": True}
    _, _, plain = raw(fake.openai_url + "/chat/completions", json.dumps(body).encode())
    body["stream_options"] = {"include_usage": True}
    _, _, counted = raw(fake.openai_url + "/chat/completions", json.dumps(body).encode())
    assert b'"usage"' not in plain and plain.endswith(b"data: [DONE]\n\n")
    assert counted.count(b'"usage":null') == len(chunks) and counted.endswith(b"data: [DONE]\n\n")


def test_openai_usage_override(gpt: openai.OpenAI) -> None:
    override = {
        "prompt_tokens": 1000,
        "prompt_tokens_details": {"cached_tokens": 768},
        "completion_tokens": 50,
    }
    usage = chat(gpt, model="gpt-4o-mini", extra_headers={"x-fake-usage": json.dumps(override)}).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1000, 50, 1050)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 768
    assert usage.prompt_tokens_details.audio_tokens == 0  # untouched nested fields keep their values


def test_openai_prompt_cache(gpt: openai.OpenAI) -> None:
    long_prompt = [{"role": "user", "content": "openai cache test " * 300}]  # 5400 chars -> 1350 tokens
    first, second = chat(gpt, messages=long_prompt).usage, chat(gpt, messages=long_prompt).usage
    assert first.prompt_tokens == second.prompt_tokens == 1350
    assert first.prompt_tokens_details is not None and first.prompt_tokens_details.cached_tokens == 0
    assert second.prompt_tokens_details is not None and second.prompt_tokens_details.cached_tokens == 1280
    short = [{"role": "user", "content": "short"}]
    chat(gpt, messages=short)
    again = chat(gpt, messages=short).usage
    assert again.prompt_tokens_details.cached_tokens == 0  # under 1024 tokens: never cached


# ---- errors ---------------------------------------------------------------------------------------

ANTHROPIC_ERRORS = [
    ("error-400", anthropic.BadRequestError, 400, "invalid_request_error"),
    ("error-401", anthropic.AuthenticationError, 401, "authentication_error"),
    ("error-429", anthropic.RateLimitError, 429, "rate_limit_error"),
    ("error-500", anthropic.InternalServerError, 500, "api_error"),
    ("error-529", anthropic.OverloadedError, 529, "overloaded_error"),
]
OPENAI_ERRORS = [
    ("error-400", openai.BadRequestError, 400),
    ("error-401", openai.AuthenticationError, 401),
    ("error-429", openai.RateLimitError, 429),
    ("error-500", openai.InternalServerError, 500),
    ("error-529", openai.InternalServerError, 503),
]


@pytest.mark.parametrize(("name", "error", "status", "kind"), ANTHROPIC_ERRORS)
def test_anthropic_error_modes(
    claude: anthropic.Anthropic, name: str, error: type[Exception], status: int, kind: str
) -> None:
    with pytest.raises(error) as caught:
        ask(claude, extra_headers=mode(name))
    exc = caught.value
    assert isinstance(exc, anthropic.APIStatusError) and exc.status_code == status
    assert isinstance(exc.body, dict) and exc.body["type"] == "error" and exc.body["error"]["type"] == kind
    assert exc.body["request_id"] == exc.request_id and exc.request_id.startswith("req_")
    assert exc.response.headers.get("retry-after") == ("1" if status == 429 else None)


@pytest.mark.parametrize(("name", "error", "status"), OPENAI_ERRORS)
def test_openai_error_modes(gpt: openai.OpenAI, name: str, error: type[Exception], status: int) -> None:
    with pytest.raises(error) as caught:
        chat(gpt, extra_headers=mode(name))
    exc = caught.value
    assert isinstance(exc, openai.APIStatusError) and exc.status_code == status
    assert isinstance(exc.body, dict) and set(exc.body) == {"message", "type", "param", "code"}
    assert exc.code and exc.response.headers["x-request-id"].startswith("req_")


def test_bad_requests_in_both_formats(fake: FakeUpstream) -> None:
    status, _, body = raw(fake.url + "/v1/messages", b"{not json", {"anthropic-version": "2023-06-01"})
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"
    status, _, body = raw(fake.openai_url + "/chat/completions", b"[1, 2")
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"
    status, _, body = raw(fake.openai_url + "/chat/completions", b"{}", mode("eror-500"))  # typo: refused
    assert status == 400 and "x-fake-mode" in json.loads(body)["error"]["message"]


def test_stream_error_mode(claude: anthropic.Anthropic, gpt: openai.OpenAI) -> None:
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        for event in ask(claude, stream=True, extra_headers=mode("stream-error")):
            seen.append(event.type)
    assert caught.value.type == "overloaded_error" and caught.value.status_code == 200
    assert seen == ["message_start", "content_block_start", "content_block_delta", "content_block_delta"]
    with pytest.raises(openai.APIError, match="overloaded"):
        for _ in chat(gpt, stream=True, extra_headers=mode("stream-error")):
            pass


def test_stream_cut_mode(claude: anthropic.Anthropic, gpt: openai.OpenAI) -> None:
    seen: list[str] = []
    with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError)):
        for event in ask(claude, stream=True, extra_headers=mode("stream-cut")):
            seen.append(event.type)
    assert seen[0] == "message_start" and "content_block_delta" in seen and "message_delta" not in seen
    chunks = 0
    with pytest.raises(openai.APIConnectionError):
        for _ in chat(gpt, stream=True, extra_headers=mode("stream-cut")):
            chunks += 1
    assert chunks == 3


# ---- models, recording, auth, pacing --------------------------------------------------------------


def test_models_in_both_formats(claude: anthropic.Anthropic, gpt: openai.OpenAI) -> None:
    claude_models = {m.id: m for m in claude.models.list()}
    assert {"claude-haiku-4-5", "claude-sonnet-4-6", "claude-sonnet-4-5-20250929"} <= set(claude_models)
    assert claude_models["claude-opus-4-6"].display_name == "Claude Opus 4.6"
    assert claude_models["claude-opus-4-6"].type == "model"
    openai_models = {m.id: m for m in gpt.models.list()}
    assert {"gpt-4o", "gpt-4.1-mini", "o3", "o4-mini", "gpt-5"} <= set(openai_models)
    assert openai_models["gpt-5"].object == "model" and openai_models["gpt-5"].owned_by


def test_recorded_requests(claude: anthropic.Anthropic, fake: FakeUpstream) -> None:
    fake.clear()
    beta = {"anthropic-beta": "prompt-caching-2024-07-31"}
    ask(claude, model="claude-sonnet-4-6", extra_query={"beta": "true"}, extra_headers=beta)
    [record] = fake.requests
    assert isinstance(record, RecordedRequest) and (record.method, record.path) == ("POST", "/v1/messages")
    assert record.query == "beta=true" and record.headers["content-type"] == "application/json"
    sent_key = record.headers.get("x-api-key") or record.headers["authorization"].removeprefix("Bearer ")
    assert sent_key == "sk-ant-test"  # SDK versions differ in which header carries the key
    assert record.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert json.loads(record.body)["model"] == "claude-sonnet-4-6"
    status, _, listed = raw(fake.url + "/_fake/requests", method="GET")
    assert status == 200 and json.loads(listed)[0]["body"] == record.body.decode()
    assert raw(fake.url + "/_fake/requests", method="DELETE")[0] == 204 and fake.requests == []


def test_api_keys_enforced() -> None:
    settings = FakeSettings(anthropic_api_key="sk-ant-good", openai_api_key="sk-good", record_requests=0)
    with (
        FakeUpstream(settings) as fake,
        anthropic.Anthropic(base_url=fake.url, api_key="sk-ant-bad", max_retries=0) as bad,
        anthropic.Anthropic(base_url=fake.url, api_key="sk-ant-good", max_retries=0) as good,
        openai.OpenAI(base_url=fake.openai_url, api_key="sk-bad", max_retries=0) as bad_gpt,
        openai.OpenAI(base_url=fake.openai_url, api_key="sk-good", max_retries=0) as good_gpt,
    ):
        with pytest.raises(anthropic.AuthenticationError):
            ask(bad)
        assert ask(good, max_tokens=5).usage.output_tokens == 5
        body = json.dumps({"model": "m", "max_tokens": 5, "messages": USER}).encode()
        for key, status, kind in (("sk-ant-good", 200, "message"), ("sk-ant-bad", 401, "error")):
            answer = raw(fake.url + "/v1/messages", body, {"x-api-key": key})
            assert (answer[0], json.loads(answer[2])["type"]) == (status, kind)
        with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
            chat(bad_gpt)
        assert chat(good_gpt).choices[0].message.content
        assert fake.requests == []  # recording disabled


def test_latency_and_chunk_delay(claude: anthropic.Anthropic) -> None:
    started = time.perf_counter()
    ask(claude, extra_headers={"x-fake-latency-ms": "150"})
    assert time.perf_counter() - started >= 0.15
    started = time.perf_counter()
    events = list(ask(claude, max_tokens=8, stream=True, extra_headers={"x-fake-chunk-delay-ms": "20"}))
    assert len(events) == 7 and time.perf_counter() - started >= 0.02 * 7  # 8 wire events (with ping): 7 gaps


# ---- how a stream is written (benchmarks) -----------------------------------------------------------


def asgi_stream(settings: FakeSettings, headers: dict[str, str], path: str = "/v1/messages") -> list[bytes]:
    """The body messages the fake's app sends for one streaming call (what the server writes)."""
    app = create_fake_app(settings)
    if path == "/v1/messages":
        body = {"model": "claude-haiku-4-5", "max_tokens": 16, "stream": True, "messages": USER}
    else:
        body = {"model": "gpt-4o-mini", "stream": True, "messages": USER}
    payload = json.dumps(body).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": raw_headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2),
    }  # fmt: skip
    bodies: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": payload, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message.get("body", b""))

    asyncio.run(app(scope, receive, send))
    return bodies


def test_whole_streams_write_the_same_events_in_one_message() -> None:
    by_event = asgi_stream(FakeSettings(), {})
    whole = asgi_stream(FakeSettings(whole_streams=True), {})
    assert len(by_event) > 5 and len(whole) == 1  # the last empty message ends the per-event body

    def names(data: bytes) -> list[str]:
        return [f.split("\n")[0] for f in data.decode().split("\n\n") if f]

    assert names(whole[0]) == names(b"".join(by_event))
    assert whole[0].endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    # Per call, by header, either way round; OpenAI's streams too
    assert len(asgi_stream(FakeSettings(), {"x-fake-stream-chunks": "whole"})) == 1
    assert len(asgi_stream(FakeSettings(whole_streams=True), {"x-fake-stream-chunks": "event"})) > 5
    chat = asgi_stream(FakeSettings(whole_streams=True), {}, "/v1/chat/completions")
    assert len(chat) == 1 and chat[0].endswith(b"data: [DONE]\n\n")


def test_whole_streams_keep_pacing_and_cuts() -> None:
    # A chunk delay means events one by one, whatever was asked
    paced = asgi_stream(FakeSettings(whole_streams=True), {"x-fake-chunk-delay-ms": "1"})
    assert len(paced) > 5
    # A cut stream still ends without its last events, and without ending the body
    with pytest.raises(StreamCut):
        asgi_stream(FakeSettings(whole_streams=True), {"x-fake-mode": "stream-cut"})


def test_bad_stream_chunks_value_is_refused(fake: FakeUpstream) -> None:
    body = json.dumps({"model": "m", "max_tokens": 10, "stream": True, "messages": USER}).encode()
    status, _, data = raw(fake.url + "/v1/messages", body, {"x-fake-stream-chunks": "sometimes"})
    assert status == 400 and b"x-fake-stream-chunks" in data
