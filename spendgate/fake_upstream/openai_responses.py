"""The OpenAI Responses API fake: ``/v1/responses`` (JSON and SSE), retrieve, delete, cancel, input_tokens.

The stream is the real event sequence: ``response.created``, ``response.in_progress``, each output
item (a reasoning item for reasoning models, then the assistant message with its text deltas),
and a last ``response.completed`` (or ``response.incomplete`` when ``max_output_tokens`` cut the
answer) whose ``response.usage`` is the only place usage appears. Every event carries
``sequence_number``. Stream modes: ``stream-error`` (an ``error`` event after two text deltas),
``stream-failed`` (``response.failed`` without usage), ``stream-cut`` (the connection drops),
``unknown-event``.

Responses are stored unless the request says ``store: false``; ``background: true`` answers at once
with ``status: "queued"``, completes when it is next retrieved, and can be cancelled until then.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from spendgate.fake_upstream.common import FakeState, json_response, tokens_for
from spendgate.fake_upstream.openai_api import (
    REASONING_PREFIXES,
    error_response,
    missing,
    prepare,
    prepare_json,
    prepare_object,
)
from spendgate.fake_upstream.openai_usage import prompt_tokens, responses_prompt_pieces, responses_usage
from spendgate.fake_upstream.streaming import EventStreamResponse

SUMMARY_TOKENS = 12  # a reasoning summary is short whatever the reasoning cost
ENCRYPTED_REASONING = "gAAAAABmZmFrZS1lbmNyeXB0ZWQtcmVhc29uaW5nLWZyb20tc3BlbmRnYXRl"
FAILURE = {"code": "server_error", "message": "The model failed to generate a response (simulated)."}


@dataclass(slots=True)
class _Reply:
    response_id: str
    created_at: int
    model: str
    payload: dict[str, Any]
    text_tokens: int
    reasoning_tokens: int
    incomplete: bool
    usage: dict[str, Any]
    summary: bool  # the request asked for a reasoning summary
    encrypted: bool  # the request asked for reasoning.encrypted_content
    items: list[dict[str, Any]] = field(default_factory=list)


def _skeleton(reply: _Reply, status: str) -> dict[str, Any]:
    """The response object as the request shaped it, without output or usage."""
    p = reply.payload
    return {
        "id": reply.response_id,
        "object": "response",
        "created_at": reply.created_at,
        "status": status,
        "background": p.get("background") is True,
        "error": None,
        "incomplete_details": None,
        "instructions": p.get("instructions"),
        "max_output_tokens": p.get("max_output_tokens"),
        "model": reply.model,
        "output": [],
        "parallel_tool_calls": p.get("parallel_tool_calls", True),
        "previous_response_id": p.get("previous_response_id"),
        "prompt_cache_key": p.get("prompt_cache_key"),
        "reasoning": p.get("reasoning") or {"effort": None, "summary": None},
        "service_tier": "default",
        "store": p.get("store", True) is not False,
        "temperature": p.get("temperature", 1.0),
        "text": p.get("text") or {"format": {"type": "text"}},
        "tool_choice": p.get("tool_choice", "auto"),
        "tools": p.get("tools") or [],
        "top_p": p.get("top_p", 1.0),
        "truncation": p.get("truncation", "disabled"),
        "usage": None,
        "user": p.get("user"),
        "metadata": p.get("metadata") or {},
    }


def _reasoning_item(reply: _Reply, summary_text: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"id": "rs_fake" + reply.response_id[9:], "type": "reasoning", "summary": []}
    if summary_text is not None:
        item["summary"] = [{"type": "summary_text", "text": summary_text}]
    if reply.encrypted:
        item["encrypted_content"] = ENCRYPTED_REASONING
    return item


def _message_item(reply: _Reply, text: str | None, status: str = "completed") -> dict[str, Any]:
    content = (
        [] if text is None else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    )
    return {
        "id": "msg_fake" + reply.response_id[9:],
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _final(reply: _Reply, state: FakeState) -> dict[str, Any]:
    """The finished response object: output items and usage."""
    output = []
    if reply.reasoning_tokens:
        summary = state.thinking.text(SUMMARY_TOKENS) if reply.summary else None
        output.append(_reasoning_item(reply, summary))
    status = "incomplete" if reply.incomplete else "completed"
    output.append(_message_item(reply, state.answer.text(reply.text_tokens), status))
    body = _skeleton(reply, status)
    body.update(output=output, usage=reply.usage)
    if reply.incomplete:
        body["incomplete_details"] = {"reason": "max_output_tokens"}
    else:
        body["completed_at"] = int(time.time())
    return body


class _Events:
    """SSE frames with increasing ``sequence_number``s."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def add(self, kind: str, **fields: Any) -> None:
        data = {"type": kind, "sequence_number": len(self.frames), **fields}
        self.frames.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")


def _stream_events(reply: _Reply, state: FakeState, mode: str) -> list[bytes]:
    ev = _Events()
    ev.add("response.created", response=_skeleton(reply, "in_progress"))
    ev.add("response.in_progress", response=_skeleton(reply, "in_progress"))
    if mode == "unknown-event":
        ev.add("response.x_future_event", payload={"n": 1})
    index = 0
    if reply.reasoning_tokens:
        summary = state.thinking.text(SUMMARY_TOKENS) if reply.summary else None
        item = _reasoning_item(reply, summary)
        ev.add("response.output_item.added", output_index=0, item={**item, "summary": []})
        if summary is not None:
            where = {"item_id": item["id"], "output_index": 0, "summary_index": 0}
            ev.add(
                "response.reasoning_summary_part.added", **where, part={"type": "summary_text", "text": ""}
            )
            corpus = state.thinking
            for i in range(corpus.delta_count(SUMMARY_TOKENS)):
                ev.add(
                    "response.reasoning_summary_text.delta", **where, delta=corpus.delta(SUMMARY_TOKENS, i)
                )
            ev.add("response.reasoning_summary_text.done", **where, text=summary)
            ev.add(
                "response.reasoning_summary_part.done",
                **where,
                part={"type": "summary_text", "text": summary},
            )
        ev.add("response.output_item.done", output_index=0, item=item)
        index = 1
    message = _message_item(reply, None, "in_progress")
    where = {"item_id": message["id"], "output_index": index, "content_index": 0}
    ev.add("response.output_item.added", output_index=index, item=message)
    empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    ev.add("response.content_part.added", **where, part=empty)
    corpus, tokens = state.answer, reply.text_tokens
    for i in range(corpus.delta_count(tokens)):
        ev.add("response.output_text.delta", **where, delta=corpus.delta(tokens, i), logprobs=[])
        if i == 1 and mode in ("stream-error", "stream-failed", "stream-cut"):
            return _break_off(ev, reply, mode)
    text = corpus.text(tokens)
    done = {**empty, "text": text}
    ev.add("response.output_text.done", **where, text=text, logprobs=[])
    ev.add("response.content_part.done", **where, part=done)
    status = "incomplete" if reply.incomplete else "completed"
    ev.add("response.output_item.done", output_index=index, item=_message_item(reply, text, status))
    final = _final(reply, state)
    ev.add(f"response.{status}", response=final)
    return ev.frames


def _break_off(ev: _Events, reply: _Reply, mode: str) -> list[bytes]:
    if mode == "stream-error":
        ev.add("error", code="server_error", message="The server had an error (simulated).", param=None)
    elif mode == "stream-failed":
        failed = _skeleton(reply, "failed")
        failed["error"] = FAILURE
        ev.add("response.failed", response=failed)
    return ev.frames


def _not_found(response_id: str, request_id: str) -> Response:
    message = f"Response with id '{response_id}' not found."
    return error_response(404, message, "invalid_request_error", None, request_id, "response_id")


async def create(request: Request) -> Response:
    ready = await prepare_json(request)
    if isinstance(ready, Response):
        return ready
    prepared, payload, model = ready
    state, request_id, controls = prepared.state, prepared.request_id, prepared.controls
    given = payload.get("input")
    if given is None and not payload.get("previous_response_id") and not payload.get("prompt"):
        return missing("input", request_id)
    if given is not None and not isinstance(given, str | list):
        message = "Invalid type for 'input': expected a string or an array of input items."
        return error_response(400, message, "invalid_request_error", "invalid_type", request_id, "input")
    cap = payload.get("max_output_tokens")
    wanted = controls.output_tokens
    output = min(cap, wanted) if isinstance(cap, int) and cap > 0 else wanted
    reasoning = output // 2 if model.startswith(REASONING_PREFIXES) else 0
    prompt, cached = prompt_tokens(responses_prompt_pieces(payload), model, state.prompt_cache)
    settings = payload.get("reasoning")
    include = payload.get("include")
    reply = _Reply(
        response_id="resp_fake" + request_id[8:],
        created_at=int(time.time()),
        model=model,
        payload=payload,
        text_tokens=output - reasoning,
        reasoning_tokens=reasoning,
        incomplete=output < wanted,
        usage=responses_usage(prompt, cached, output, reasoning, controls.usage),
        summary=isinstance(settings, dict) and settings.get("summary") is not None,
        encrypted=isinstance(include, list) and "reasoning.encrypted_content" in include,
    )
    headers = {"x-request-id": request_id}
    stored = payload.get("store", True) is not False
    if payload.get("background") is True:
        if not stored:
            message = "Background responses must be stored: set store to true."
            return error_response(400, message, "invalid_request_error", None, request_id, "store")
        queued = _skeleton(reply, "queued")
        state.responses.put(reply.response_id, {"queued": queued, "reply": reply})
        return json_response(queued, headers=headers)
    if stored:
        state.responses.put(reply.response_id, {"final": _final(reply, state)})
    if payload.get("stream") is True:
        events = _stream_events(reply, state, controls.mode)
        return EventStreamResponse.as_asked(events, headers, controls)
    return json_response(_final(reply, state), headers=headers)


def _current(entry: dict[str, Any], state: FakeState) -> dict[str, Any]:
    """A stored response as it stands; a queued background response completes when it is looked at."""
    if "final" not in entry:
        entry["final"] = _final(entry["reply"], state)
    final: dict[str, Any] = entry["final"]
    return final


async def retrieve(request: Request) -> Response:
    prepared = await prepare(request)
    if isinstance(prepared, Response):
        return prepared
    response_id = request.path_params["response_id"]
    entry = prepared.state.responses.get(response_id)
    if entry is None:
        return _not_found(response_id, prepared.request_id)
    body = _current(entry, prepared.state)
    return json_response(body, headers={"x-request-id": prepared.request_id})


async def delete(request: Request) -> Response:
    prepared = await prepare(request)
    if isinstance(prepared, Response):
        return prepared
    response_id = request.path_params["response_id"]
    if prepared.state.responses.pop(response_id) is None:
        return _not_found(response_id, prepared.request_id)
    body = {"id": response_id, "object": "response.deleted", "deleted": True}
    return json_response(body, headers={"x-request-id": prepared.request_id})


async def cancel(request: Request) -> Response:
    prepared = await prepare(request)
    if isinstance(prepared, Response):
        return prepared
    response_id, request_id = request.path_params["response_id"], prepared.request_id
    entry = prepared.state.responses.get(response_id)
    if entry is None:
        return _not_found(response_id, request_id)
    if "queued" not in entry:
        message = "Only responses created with background set to true can be cancelled."
        return error_response(400, message, "invalid_request_error", None, request_id)
    if "final" not in entry:
        entry["final"] = {**entry["queued"], "status": "cancelled"}
    return json_response(entry["final"], headers={"x-request-id": request_id})


async def input_tokens(request: Request) -> Response:
    ready = await prepare_object(request)
    if isinstance(ready, Response):
        return ready
    prepared, payload = ready
    count = max(1, tokens_for(sum(map(len, responses_prompt_pieces(payload)))))
    body = {"object": "response.input_tokens", "input_tokens": count}
    return json_response(body, headers={"x-request-id": prepared.request_id})
