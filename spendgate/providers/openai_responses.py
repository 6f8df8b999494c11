"""OpenAI Responses API adapter: `/v1/responses` (what Codex CLI speaks), JSON and SSE.

Usage arrives once, in the response object: the JSON answer, or the `response` of the stream's
last event (`response.completed`, `response.incomplete` or `response.failed`). Its
`input_tokens` INCLUDE the cached (and cache-write) tokens and `output_tokens` include reasoning,
as in Chat Completions. A stream that ends without that event (cut, or an `error` event) is
estimated from the text deltas seen, never recorded as $0. The stream is passed through unchanged.
"""

from __future__ import annotations

from typing import Any

import orjson

from spendgate.errors import InvalidRequest
from spendgate.pricing import Usage
from spendgate.providers.base import (
    Metered,
    RequestInfo,
    RouteFeatures,
    SSEBuffer,
    as_int,
    as_object,
    clean_text,
    json_object,
    read_metadata,
    read_stream,
    read_token_limit,
    rough_tokens,
    sse_fields,
)
from spendgate.providers.openai import OpenAIProvider, read_model, usage_from

# The stream's last word: its `response` carries the usage.
TERMINAL_EVENTS = frozenset({b"response.completed", b"response.incomplete", b"response.failed"})
# Events whose `delta` is generated text (or tool arguments): what a cut stream is estimated from.
DELTA_EVENTS = frozenset(
    {
        b"response.output_text.delta",
        b"response.refusal.delta",
        b"response.reasoning_text.delta",
        b"response.reasoning_summary_text.delta",
        b"response.function_call_arguments.delta",
        b"response.custom_tool_call_input.delta",
        b"response.code_interpreter_call_code.delta",
        b"response.mcp_call_arguments.delta",
    }
)


class OpenAIResponsesProvider(OpenAIProvider):
    """The Responses API: OpenAI's error format and headers, its own request and usage shapes."""

    path = "/v1/responses"
    upstream_path = "/responses"

    def parse(self, body: bytes, path: str) -> RequestInfo:
        data = json_object(body)
        model = read_model(data)
        given = data.get("input")
        if given is not None and not isinstance(given, str | list):
            raise InvalidRequest("Invalid type for 'input': expected a string or an array.")
        if data.get("background") is True:
            # Usage would only appear when the response is polled later, outside this call:
            # refused rather than recorded at $0 (see docs/codex.md).
            raise InvalidRequest(
                "Spendgate does not meter background responses (background: true) yet; "
                "send the request without background, streamed if it is long.",
            )
        return RequestInfo(
            model=model,
            stream=read_stream(data),
            max_tokens=read_token_limit(data, "max_output_tokens"),
            metadata=read_metadata(data),
            body=data,
            path=path,
        )

    def upstream_body(self, body: bytes, info: RequestInfo, model: str) -> bytes:
        return body if model == info.model else orjson.dumps({**info.body, "model": model})

    def meter_json(self, status: int, body: bytes) -> Metered:
        if status >= 400:
            return super().meter_json(status, body)
        return metered_response(orjson.loads(body))

    def stream_meter(self, info: RequestInfo) -> ResponsesStreamMeter:
        return ResponsesStreamMeter()

    def route_features(self, info: RequestInfo) -> RouteFeatures:
        body = info.body
        items = body.get("input")
        reasoning = body.get("reasoning")
        thinking = isinstance(reasoning, dict) and reasoning.get("effort") not in (None, "none", "minimal")
        count = len(items) if isinstance(items, list) else 1
        role, results = _last_item(items)
        return RouteFeatures(bool(body.get("tools")), thinking, count, role, results)

    def estimate_input_tokens(self, info: RequestInfo) -> int:
        body = info.body
        instructions = body.get("instructions")
        chars = len(orjson.dumps(body.get("input"))) + len(orjson.dumps(body.get("tools")))
        return rough_tokens(chars + (len(instructions) if isinstance(instructions, str) else 0))


def _last_item(items: Any) -> tuple[str, bool]:
    """(role, hands back tool results) of the last input item: a message has a role, a tool's
    output is an item of its own type (function_call_output, custom_tool_call_output, ...)."""
    if not isinstance(items, list) or not items or not isinstance(items[-1], dict):
        return ("user", False) if isinstance(items, str) else ("", False)
    last = items[-1]
    kind, role = last.get("type"), last.get("role")
    if isinstance(kind, str) and kind.endswith("_output"):
        return "tool", True
    return (role if isinstance(role, str) else "")[:20], False


def _web_searches(response: dict[str, Any]) -> int:
    tools = response.get("tool_usage")
    search = tools.get("web_search") if isinstance(tools, dict) else None
    return as_int(search.get("num_requests")) if isinstance(search, dict) else 0


def metered_response(response: dict[str, Any]) -> Metered:
    """Meter one response object (the JSON answer, or a terminal stream event's `response`)."""
    model = clean_text(response.get("model"))
    error_type = None
    if response.get("status") == "failed":
        error_type = clean_text(as_object(response.get("error")).get("code")) or "response_failed"
    usage = response.get("usage")
    if not isinstance(usage, dict):
        # A failed response may carry no usage: the caller estimates it, never $0.
        return Metered(
            usage=Usage(), response_model=model, estimated=True, complete=False, error_type=error_type
        )
    counted = usage_from(usage, "input_tokens", "output_tokens")._replace(
        web_search_requests=_web_searches(response)
    )
    return Metered(usage=counted, response_model=model, complete=True, error_type=error_type)


class ResponsesStreamMeter:
    """Reads the Responses SSE stream as it passes (unchanged) for its final usage."""

    __slots__ = ("_buffer", "_delta_chars", "_error", "_final", "_model")

    def __init__(self) -> None:
        self._buffer = SSEBuffer()
        self._final: Metered | None = None
        self._model: str | None = None
        self._delta_chars = 0
        self._error: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        for event in self._buffer.push(chunk):
            self._read(event)
        return chunk

    def flush(self) -> bytes:
        rest = self._buffer.rest()
        if rest.strip():
            self._read(rest)
        return b""

    def _read(self, event: bytes) -> None:
        name, data = sse_fields(event)
        if not data or self._final is not None:
            return
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(payload, dict):
            return
        kind = payload.get("type")
        # The `event:` line names the type; a stream without it still has `type` in the data.
        name = name or (kind.encode() if isinstance(kind, str) else b"")
        if name in DELTA_EVENTS:
            delta = payload.get("delta")
            if isinstance(delta, str):
                self._delta_chars += len(delta)
        elif name in TERMINAL_EVENTS:
            response = payload.get("response")
            if isinstance(response, dict):
                self._final = metered_response(response)
        elif name == b"error":
            self._error = clean_text(payload.get("code") or payload.get("type")) or "server_error"
        elif name in (b"response.created", b"response.in_progress"):
            self._model = clean_text(as_object(payload.get("response")).get("model")) or self._model

    @property
    def finished(self) -> bool:
        return self._final is not None

    def result(self) -> Metered:
        final = self._final
        if final is not None and not final.estimated:
            return final
        # Cut, an `error` event, or a failed response without usage: the pipeline adds the input estimate.
        output = rough_tokens(self._delta_chars) if self._delta_chars else 0
        return Metered(
            usage=Usage(output_tokens=output),
            response_model=(final.response_model if final else None) or self._model,
            estimated=True,
            complete=False,
            error_type=(final.error_type if final else None) or self._error,
        )
