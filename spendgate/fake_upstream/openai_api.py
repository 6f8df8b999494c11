"""The OpenAI Chat Completions fake: ``/v1/chat/completions``, the models list and errors."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

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
from spendgate.fake_upstream.openai_usage import build_usage, chat_prompt_pieces, prompt_tokens
from spendgate.fake_upstream.streaming import EventStreamResponse

MODELS = (  # id, created, owned_by
    ("gpt-5", 1754425777, "system"),
    ("gpt-4.1", 1744316542, "system"),
    ("gpt-4.1-mini", 1744318173, "system"),
    ("gpt-4o", 1715367049, "system"),
    ("gpt-4o-mini", 1721172741, "system"),
    ("o3", 1744225308, "system"),
    ("o4-mini", 1744225351, "system"),
)
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
MODE_ERRORS = {  # x-fake-mode -> (status, message, type, code)
    "error-400": (
        400,
        "Invalid request (simulated by x-fake-mode: error-400).",
        "invalid_request_error",
        "invalid_request",
    ),
    "error-401": (401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    "error-429": (429, "Rate limit reached for requests (simulated).", "requests", "rate_limit_exceeded"),
    "error-500": (
        500,
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        "server_error",
    ),
    "error-529": (
        503,
        "The engine is currently overloaded, please try again later.",
        "server_error",
        "service_unavailable",
    ),
}
STREAM_ERROR = {
    "error": {
        "message": "The server is overloaded (simulated).",
        "type": "server_error",
        "param": None,
        "code": "service_unavailable",
    }
}


def models_body() -> bytes:
    data = [
        {"id": mid, "object": "model", "created": created, "owned_by": owner}
        for mid, created, owner in MODELS
    ]
    return orjson.dumps({"object": "list", "data": data})


def error_response(
    status: int,
    message: str,
    kind: str,
    code: str | None,
    request_id: str,
    param: str | None = None,
    controls: Controls | None = None,
) -> Response:
    headers = {"x-request-id": request_id, **error_headers(status, controls)}
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return json_response(body, status, headers)


def check_auth(headers: dict[str, str], state: FakeState, request_id: str) -> Response | None:
    expected = state.settings.openai_api_key
    if expected is None or bearer_token(headers) == expected:
        return None
    message = "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
    return error_response(401, message, "invalid_request_error", "invalid_api_key", request_id)


# ---- handlers ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reply:
    completion_id: str
    created: int
    model: str
    text_tokens: int
    finish_reason: str
    usage: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request past the shared checks: recorded, paced, authenticated, its mode errors answered."""

    state: FakeState
    request_id: str
    controls: Controls
    body: bytes


async def prepare(request: Request) -> Prepared | Response:
    """Shared front half of every OpenAI endpoint: record, controls, latency, auth, mode errors."""
    state = fake_state(request)
    body, headers = await state.ingest(request)
    request_id = "req_fake" + state.next_id()
    try:
        controls = parse_controls(headers, state.settings, body)
    except ControlError as exc:
        return error_response(400, str(exc), "invalid_request_error", "invalid_header", request_id)
    await pause(controls.latency_s)
    denied = check_auth(headers, state, request_id)
    if denied is not None:
        return denied
    if controls.mode in MODE_ERRORS:
        return error_response(*MODE_ERRORS[controls.mode], request_id, controls=controls)
    return Prepared(state, request_id, controls, body)


def missing(name: str, request_id: str, message: str | None = None) -> Response:
    message = message or f"Missing required parameter: '{name}'."
    return error_response(
        400, message, "invalid_request_error", "missing_required_parameter", request_id, name
    )


async def prepare_object(request: Request) -> tuple[Prepared, dict[str, Any]] | Response:
    """``prepare``, then the body as a JSON object."""
    prepared = await prepare(request)
    if isinstance(prepared, Response):
        return prepared
    payload = parse_json_object(prepared.body)
    if isinstance(payload, str):
        return error_response(400, payload, "invalid_request_error", "invalid_json", prepared.request_id)
    return prepared, payload


async def prepare_json(request: Request) -> tuple[Prepared, dict[str, Any], str] | Response:
    """``prepare_object``, with a string ``model``."""
    ready = await prepare_object(request)
    if isinstance(ready, Response):
        return ready
    prepared, payload = ready
    model = payload.get("model")
    if not isinstance(model, str):
        return missing("model", prepared.request_id, "you must provide a model parameter")
    return prepared, payload, model


async def chat_completions(request: Request) -> Response:
    ready = await prepare_json(request)
    if isinstance(ready, Response):
        return ready
    prepared, payload, model = ready
    state, request_id, controls = prepared.state, prepared.request_id, prepared.controls
    if not isinstance(payload.get("messages"), list):
        return missing("messages", request_id)
    cap = payload.get("max_completion_tokens") or payload.get("max_tokens")
    wanted = controls.output_tokens
    completion = min(cap, wanted) if isinstance(cap, int) and cap > 0 else wanted
    reasoning = completion // 2 if model.startswith(REASONING_PREFIXES) else 0
    prompt, cached = prompt_tokens(chat_prompt_pieces(payload), model, state.prompt_cache)
    reply = _Reply(
        completion_id="chatcmpl-fake" + request_id[8:],
        created=int(time.time()),
        model=model,
        text_tokens=completion - reasoning,
        finish_reason="length" if completion < wanted else "stop",
        usage=build_usage(prompt, cached, completion, reasoning, controls.usage),
    )
    headers = {"x-request-id": request_id}
    if payload.get("stream") is True:
        options = payload.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        events = _stream_events(reply, state, include_usage, controls.mode)
        return EventStreamResponse.as_asked(events, headers, controls)
    return json_response(_completion_json(reply, state), headers=headers)


def _completion_json(reply: _Reply, state: FakeState) -> dict[str, Any]:
    message = {"role": "assistant", "content": state.answer.text(reply.text_tokens), "refusal": None}
    return {
        "id": reply.completion_id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
        "usage": reply.usage,
        "system_fingerprint": "fp_fake",
    }


def _frame(data: object) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _stream_events(reply: _Reply, state: FakeState, include_usage: bool, mode: str) -> list[bytes]:
    base: dict[str, Any] = {
        "id": reply.completion_id,
        "object": "chat.completion.chunk",
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": "fp_fake",
    }
    tail = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _frame({**base, "choices": [choice], **tail})

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    corpus, tokens = state.answer, reply.text_tokens
    events.extend(chunk({"content": corpus.delta(tokens, i)}) for i in range(corpus.delta_count(tokens)))
    if mode in ("stream-error", "stream-cut"):
        del events[3:]  # the role chunk and two content chunks, then trouble
        if mode == "stream-error":
            events.append(_frame(STREAM_ERROR))
        return events
    events.append(chunk({}, reply.finish_reason))
    if include_usage:
        events.append(_frame({**base, "choices": [], "usage": reply.usage}))
    events.append(b"data: [DONE]\n\n")
    return events


async def models(request: Request) -> Response:
    state = fake_state(request)
    _, headers = await state.ingest(request)
    request_id = "req_fake" + state.next_id()
    denied = check_auth(headers, state, request_id)
    if denied is not None:
        return denied
    body: bytes = request.app.state.openai_models
    return Response(body, media_type="application/json", headers={"x-request-id": request_id})
