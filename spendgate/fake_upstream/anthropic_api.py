"""The Anthropic Messages API fake: ``/v1/messages``, ``count_tokens``, the models list and errors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from spendgate.fake_upstream.anthropic_usage import build_usage, count_input_tokens, prompt_usage
from spendgate.fake_upstream.common import (
    ControlError,
    Controls,
    FakeState,
    bearer_token,
    error_headers,
    fake_state,
    json_response,
    parse_controls,
    parse_json_object,
    pause,
)
from spendgate.fake_upstream.streaming import EventStreamResponse
from spendgate.fake_upstream.text import TOKENS_PER_DELTA, Corpus

MODELS = (  # id, display name, release date; newest first like the real list
    ("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z"),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
    ("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
    ("claude-sonnet-4-5", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
)
MODE_ERRORS = {  # x-fake-mode -> (status, error type, message)
    "error-400": (400, "invalid_request_error", "Invalid request (simulated by x-fake-mode: error-400)."),
    "error-401": (401, "authentication_error", "invalid x-api-key"),
    "error-429": (429, "rate_limit_error", "This request would exceed the rate limit (simulated)."),
    "error-500": (500, "api_error", "Internal server error"),
    "error-529": (529, "overloaded_error", "Overloaded"),
}
SIGNATURE = "RmFrZVNpZ25hdHVyZUZvclRoaW5raW5nQmxvY2tzRnJvbVNwZW5kZ2F0ZQ=="
STREAM_ERROR = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
UNKNOWN_EVENT = {"type": "x_future_event", "payload": {"n": 1}}


def sse(event: str, data: object) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _delta(index: int, kind: str, text: str) -> bytes:
    field = "thinking" if kind == "thinking_delta" else "text"
    delta = {"type": kind, field: text}
    return sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def _text_start(index: int) -> bytes:
    block = {"type": "text", "text": ""}
    return sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})


@dataclass(frozen=True, slots=True)
class AnthropicAssets:
    """Bytes that never change between requests, rendered once per app."""

    models_body: bytes
    ping: bytes
    stop: bytes
    block_stops: tuple[bytes, bytes]
    thinking_start: bytes
    text_starts: tuple[bytes, bytes]
    signature: bytes
    full_deltas: dict[tuple[str, int, int], bytes]  # (kind, block index, delta index in cycle)

    @classmethod
    def build(cls, state: FakeState) -> AnthropicAssets:
        models = [
            {"type": "model", "id": mid, "display_name": name, "created_at": created}
            for mid, name, created in MODELS
        ]
        full: dict[tuple[str, int, int], bytes] = {}
        for kind, corpus in (("thinking_delta", state.thinking), ("text_delta", state.answer)):
            for index in (0, 1):
                for j, text in enumerate(corpus.deltas):
                    full[kind, index, j] = _delta(index, kind, text)
        return cls(
            models_body=orjson.dumps(
                {"data": models, "has_more": False, "first_id": models[0]["id"], "last_id": models[-1]["id"]}
            ),
            ping=sse("ping", {"type": "ping"}),
            stop=sse("message_stop", {"type": "message_stop"}),
            block_stops=(
                sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
                sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
            ),
            thinking_start=sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                },
            ),
            text_starts=(_text_start(0), _text_start(1)),
            signature=sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "signature_delta", "signature": SIGNATURE},
                },
            ),
            full_deltas=full,
        )

    def deltas(self, kind: str, index: int, corpus: Corpus, tokens: int) -> Iterator[bytes]:
        per_cycle = len(corpus.deltas)
        for i in range(corpus.delta_count(tokens)):
            if i and (i + 1) * TOKENS_PER_DELTA <= tokens:
                yield self.full_deltas[kind, index, i % per_cycle]
            else:
                yield _delta(index, kind, corpus.delta(tokens, i))


def error_response(
    status: int, kind: str, message: str, request_id: str, controls: Controls | None = None
) -> Response:
    headers = {"request-id": request_id, **error_headers(status, controls)}
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
    return json_response(body, status, headers)


def check_auth(headers: dict[str, str], state: FakeState, request_id: str) -> Response | None:
    expected = state.settings.anthropic_api_key
    if expected is None:
        return None
    key = headers.get("x-api-key") or bearer_token(headers)
    if key == expected:
        return None
    return error_response(401, "authentication_error", "invalid x-api-key", request_id)


async def front(request: Request) -> tuple[FakeState, str, Controls, bytes] | Response:
    """Shared front half of every endpoint: record, controls, latency, auth, mode errors."""
    state = fake_state(request)
    body, headers = await state.ingest(request)
    request_id = "req_fake" + state.next_id()
    try:
        controls = parse_controls(headers, state.settings, body)
    except ControlError as exc:
        return error_response(400, "invalid_request_error", str(exc), request_id)
    await pause(controls.latency_s)
    denied = check_auth(headers, state, request_id)
    if denied is not None:
        return denied
    if controls.mode in MODE_ERRORS:
        return error_response(*MODE_ERRORS[controls.mode], request_id, controls)
    return state, request_id, controls, body


def message_params_error(payload: dict[str, Any]) -> str | None:
    """What is wrong with a Messages request body, as Anthropic words it; None when it is fine."""
    if not isinstance(payload.get("model"), str):
        return "model: Field required"
    if not isinstance(payload.get("messages"), list):
        return "messages: Field required"
    return None


async def front_json(request: Request) -> tuple[FakeState, str, Controls, dict[str, Any]] | Response:
    """``front``, then the body as a JSON object."""
    ready = await front(request)
    if isinstance(ready, Response):
        return ready
    state, request_id, controls, body = ready
    payload = parse_json_object(body)
    if isinstance(payload, str):
        return error_response(400, "invalid_request_error", payload, request_id)
    return state, request_id, controls, payload


async def _prepare(request: Request) -> tuple[FakeState, str, Controls, dict[str, Any]] | Response:
    """``front_json``, then the body as a Messages request (model and messages present)."""
    ready = await front_json(request)
    if isinstance(ready, Response):
        return ready
    state, request_id, controls, payload = ready
    problem = message_params_error(payload)
    if problem is not None:
        return error_response(400, "invalid_request_error", problem, request_id)
    return state, request_id, controls, payload


async def count_tokens(request: Request) -> Response:
    prepared = await _prepare(request)
    if isinstance(prepared, Response):
        return prepared
    _, request_id, _, payload = prepared
    return json_response({"input_tokens": count_input_tokens(payload)}, headers={"request-id": request_id})


async def messages(request: Request) -> Response:
    prepared = await _prepare(request)
    if isinstance(prepared, Response):
        return prepared
    state, request_id, controls, payload = prepared
    reply = make_reply(payload, state, controls, "msg_fake" + request_id[8:])
    if isinstance(reply, str):
        return error_response(400, "invalid_request_error", reply, request_id)
    return reply_response(request, reply, controls, request_id, stream=payload.get("stream") is True)


def reply_response(
    request: Request, reply: Reply, controls: Controls, request_id: str, *, stream: bool
) -> Response:
    """A Messages answer as JSON or SSE (also the Vertex fake's: Vertex relays Anthropic's)."""
    state = fake_state(request)
    headers = {"request-id": request_id}
    if stream:
        assets: AnthropicAssets = request.app.state.anthropic
        events = stream_events(reply, state, assets, controls.mode)
        return EventStreamResponse.as_asked(events, headers, controls)
    return json_response(message_json(reply, state), headers=headers)


@dataclass(frozen=True, slots=True)
class Reply:
    message_id: str
    model: str
    thinking_tokens: int | None  # None: no thinking block
    text_tokens: int
    stop_reason: str
    usage: dict[str, Any]


def make_reply(
    payload: dict[str, Any], state: FakeState, controls: Controls, message_id: str, model: str | None = None
) -> Reply | str:
    """The answer to a valid Messages request (the prompt cache updated), or what is wrong with it.
    `model`: the model named in the path (the Bedrock and Vertex fakes), where the body has none."""
    problem = message_params_error(payload if model is None else {**payload, "model": model})
    if problem is not None:
        return problem
    max_tokens = payload.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Field required"
    model = model or payload["model"]
    output = min(max_tokens, controls.output_tokens)
    thinking = payload.get("thinking")
    thinks = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    thinking_tokens = output // 2 if thinks else 0
    prompt = prompt_usage(payload, model, state.prompt_cache)
    usage = build_usage(prompt, output, controls.usage)
    return Reply(
        message_id=message_id,
        model=model,
        thinking_tokens=thinking_tokens if thinks else None,
        text_tokens=output - thinking_tokens,
        stop_reason="max_tokens" if max_tokens < controls.output_tokens else "end_turn",
        usage=usage,
    )


def message_json(reply: Reply, state: FakeState) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.thinking_tokens is not None:
        thinking = state.thinking.text(reply.thinking_tokens)
        content.append({"type": "thinking", "thinking": thinking, "signature": SIGNATURE})
    content.append({"type": "text", "text": state.answer.text(reply.text_tokens)})
    return {
        "id": reply.message_id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": reply.usage,
    }


def stream_events(reply: Reply, state: FakeState, assets: AnthropicAssets, mode: str) -> list[bytes]:
    start_usage = {**reply.usage, "output_tokens": 1}
    skeleton: dict[str, Any] = {
        "id": reply.message_id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    events = [sse("message_start", {"type": "message_start", "message": skeleton})]
    if mode == "unknown-event":
        events.append(sse("x_future_event", UNKNOWN_EVENT))
    events.append(assets.ping)
    index = 0
    if reply.thinking_tokens is not None:
        events.append(assets.thinking_start)
        events.extend(assets.deltas("thinking_delta", 0, state.thinking, reply.thinking_tokens))
        events += [assets.signature, assets.block_stops[0]]
        index = 1
    text_at = len(events) + 1  # first text delta
    events.append(assets.text_starts[index])
    events.extend(assets.deltas("text_delta", index, state.answer, reply.text_tokens))
    if mode in ("stream-error", "stream-cut"):
        # Break off after a couple of text deltas; never reach message_delta.
        del events[min(text_at + 2, len(events)) :]
        if mode == "stream-error":
            events.append(sse("error", STREAM_ERROR))
        return events
    events.append(assets.block_stops[index])
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": reply.usage.get("output_tokens")},
    }
    events += [sse("message_delta", delta), assets.stop]
    return events


async def hello(request: Request) -> Response:
    """``HEAD /api/hello``: the connectivity probe some clients send before real calls."""
    await fake_state(request).ingest(request)
    return Response(status_code=200)


async def models(request: Request) -> Response:
    state = fake_state(request)
    _, headers = await state.ingest(request)
    request_id = "req_fake" + state.next_id()
    denied = check_auth(headers, state, request_id)
    if denied is not None:
        return denied
    assets: AnthropicAssets = request.app.state.anthropic
    return Response(assets.models_body, media_type="application/json", headers={"request-id": request_id})
