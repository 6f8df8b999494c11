"""OpenAI Chat Completions adapter: `/v1/chat/completions`, its stream and its error format.

Streams always ask upstream for the usage chunk (`stream_options.include_usage`); a
client that did not ask for it gets the exact chunks it would have had without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from spendgate import errors
from spendgate.errors import InvalidRequest, SpendgateError
from spendgate.pricing import Usage, new_tuple
from spendgate.providers.base import (
    ClientRequest,
    HeaderFilter,
    Metered,
    RequestInfo,
    RouteFeatures,
    SSEBuffer,
    StreamMeter,
    UpstreamRequest,
    as_int,
    as_object,
    clean_text,
    error_type,
    json_object,
    last_turn,
    read_metadata,
    read_stream,
    read_token_limit,
    rough_tokens,
    sse_fields,
)

# Spendgate's errors in OpenAI's words: a type, and for some a code, as OpenAI's own errors carry them.
ERROR_TYPES: dict[type[SpendgateError], str] = {
    errors.InvalidRequest: "invalid_request_error",
    errors.AuthenticationFailed: "invalid_request_error",
    errors.PermissionDenied: "permission_denied",
    errors.UnknownEndpoint: "invalid_request_error",
    errors.MethodNotAllowed: "invalid_request_error",
    errors.ModelNotPriced: "invalid_request_error",
    errors.RequestTooLarge: "invalid_request_error",
    errors.RateLimited: "rate_limit_exceeded",
    errors.BudgetExceeded: "insufficient_quota",
    errors.CountersUnavailable: "server_error",
    errors.UpstreamUnavailable: "server_error",
}
ERROR_CODES: dict[type[SpendgateError], str] = {
    errors.AuthenticationFailed: "invalid_api_key",
    errors.ModelNotPriced: "model_not_found",
    errors.RequestTooLarge: "request_too_large",
    errors.RateLimited: "rate_limit_exceeded",
    errors.BudgetExceeded: "insufficient_quota",
}


class OpenAIProvider:
    name = "openai"
    path = "/v1/chat/completions"
    upstream_path = "/chat/completions"  # under the base URL, which ends in /v1
    request_id_header = "x-request-id"
    stream_content_type = "text/event-stream"

    def __init__(self, api_key: str | None, base_url: str = "https://api.openai.com/v1") -> None:
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.headers = HeaderFilter()  # which of a call's headers go on to the provider

    def parse(self, body: bytes, path: str) -> RequestInfo:
        data = json_object(body)
        model = read_model(data)
        if not isinstance(data.get("messages"), list):
            raise InvalidRequest("'messages' is a required property (a list)")
        # Most calls send neither `stream` nor `metadata`: no reader is called for an absent one.
        stream = "stream" in data and read_stream(data)
        options = data.get("stream_options")
        if options is not None and not isinstance(options, dict):
            raise InvalidRequest("stream_options: must be an object")
        wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        limit = read_token_limit(data, "max_completion_tokens")
        legacy = read_token_limit(data, "max_tokens")
        # In RequestInfo's field order: keyword arguments cost twice as much, on every call.
        return RequestInfo(
            model,
            stream,
            limit if limit is not None else legacy,  # max_tokens
            read_metadata(data) if "metadata" in data else {},
            wants_usage or not stream,  # wants_usage_chunk
            path,
            data,  # body
        )

    async def upstream_request(
        self, base_url: str, request: ClientRequest, info: RequestInfo, model: str
    ) -> UpstreamRequest:
        url = f"{base_url}{self.upstream_path}"
        if request.query:
            url = f"{url}?{request.query}"
        body = self.upstream_body(request.body, info, model)
        return UpstreamRequest("POST", url, self.upstream_headers(request.headers), body)

    def upstream_body(self, body: bytes, info: RequestInfo, model: str) -> bytes:
        if info.wants_usage_chunk and model == info.model:
            return body
        data = {**info.body, "model": model}
        if not info.wants_usage_chunk:
            # Ask for usage so a stream can be metered exactly (hidden again from the client).
            options = data.get("stream_options")
            data["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        return orjson.dumps(data)

    def upstream_headers(self, incoming: Mapping[str, str]) -> dict[str, str]:
        headers = self.headers.request(incoming)
        headers["accept-encoding"] = "identity"
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return headers

    def error(self, exc: SpendgateError, request_id: str) -> tuple[int, dict[str, str], bytes]:
        kind = error_type(ERROR_TYPES, exc) or "server_error"
        error = {"message": exc.message, "type": kind, "param": None, "code": error_type(ERROR_CODES, exc)}
        return exc.status, {}, orjson.dumps({"error": error})

    def meter_json(self, status: int, body: bytes) -> Metered:
        if status >= 400:
            return Metered(usage=Usage(), error_type=error_type_of(body))
        data = orjson.loads(body)
        usage = usage_from(as_object(data.get("usage")))
        # Metered(usage, response_model, estimated, complete, error_type)
        return new_tuple(Metered, (usage, clean_text(data.get("model")), False, True, None))

    def stream_meter(self, info: RequestInfo) -> StreamMeter:
        return OpenAIStreamMeter(hide_usage=not info.wants_usage_chunk)

    def route_features(self, info: RequestInfo) -> RouteFeatures:
        body = info.body
        messages = body.get("messages")
        thinking = body.get("reasoning_effort") is not None
        role, _ = last_turn(messages, None)
        count = len(messages) if isinstance(messages, list) else 0
        # Chat Completions hands tool results back as messages of their own role.
        return RouteFeatures(bool(body.get("tools")), bool(thinking), count, role, role == "tool")

    def estimate_input_tokens(self, info: RequestInfo) -> int:
        return rough_tokens(
            len(orjson.dumps(info.body.get("messages"))) + len(orjson.dumps(info.body.get("tools")))
        )


def error_type_of(body: bytes) -> str | None:
    """The error type (or code, when it has one) of an OpenAI error answer."""
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(error, dict):
        return None
    return clean_text(error.get("code") or error.get("type"))


def read_model(data: dict[str, Any]) -> str:
    """The `model` every OpenAI endpoint requires, worded as OpenAI words its absence."""
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter")
    return model


def usage_from(
    raw: dict[str, Any], prompt: str = "prompt_tokens", completion: str = "completion_tokens"
) -> Usage:
    """OpenAI usage -> Usage. The prompt count INCLUDES cached (and cache-write) tokens: split them
    out. Chat Completions says prompt_tokens / completion_tokens, the Responses API input_tokens /
    output_tokens; both put the details in `<name>_details`."""
    prompt_details = as_object(raw.get(f"{prompt}_details"))
    completion_details = as_object(raw.get(f"{completion}_details"))
    cached = as_int(prompt_details.get("cached_tokens"))
    written = as_int(prompt_details.get("cache_write_tokens"))
    uncached = max(0, as_int(raw.get(prompt)) - cached - written)
    output, reasoning = as_int(raw.get(completion)), as_int(completion_details.get("reasoning_tokens"))
    # Usage(input, cache_write_5m, cache_write_1h, cache_read, output, reasoning, web_search_requests, batch)
    return new_tuple(Usage, (uncached, written, 0, cached, output, reasoning, 0, False))


class OpenAIStreamMeter:
    """Meters `data:` frames; hides the injected usage chunk from a client that did not ask."""

    __slots__ = ("_buffer", "_content_chars", "_done", "_error", "_hide", "_model", "_usage")

    def __init__(self, hide_usage: bool) -> None:
        self._hide = hide_usage
        self._buffer = SSEBuffer()
        self._usage: Usage | None = None
        self._model: str | None = None
        self._content_chars = 0
        self._done = False
        self._error: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        if not self._hide:
            for event in self._buffer.push(chunk):
                self._read(event)
            return chunk
        # Rewriting needs whole events: hold back only an incomplete tail.
        out = [self._rewrite(event) for event in self._buffer.push(chunk)]
        return b"".join(e for e in out if e)

    def flush(self) -> bytes:
        rest = self._buffer.rest()
        if not rest.strip():
            return b""
        if not self._hide:
            self._read(rest)
            return b""
        return self._rewrite(rest)

    def _rewrite(self, event: bytes) -> bytes:
        if self._read(event):
            return b""  # the usage-only chunk the client never asked for
        if b'"usage":null' in event:
            event = event.replace(b',"usage":null', b"").replace(b'"usage":null,', b"")
        return event + b"\n\n"

    def _read(self, event: bytes) -> bool:
        """Meter one event; True when it is a usage-only chunk."""
        _, data = sse_fields(event)
        if not data:
            return False
        if data == b"[DONE]":
            self._done = True
            return False
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(payload, dict):
            return False
        if "error" in payload and isinstance(payload["error"], dict):
            error = payload["error"]
            self._error = clean_text(error.get("code") or error.get("type")) or "server_error"
            return False
        self._model = clean_text(payload.get("model")) or self._model
        choices = payload.get("choices") or []
        for choice in choices:
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                self._content_chars += len(content)
        usage = payload.get("usage")
        if isinstance(usage, dict):
            self._usage = usage_from(usage)
            return not choices
        return False

    @property
    def finished(self) -> bool:
        # An error event is the provider's last word too.
        return self._done or self._error is not None

    def result(self) -> Metered:
        if self._usage is not None:
            complete = self._done and self._error is None
            # Metered(usage, response_model, estimated, complete, error_type)
            return new_tuple(Metered, (self._usage, self._model, False, complete, self._error))
        # Cut before the usage chunk: the pipeline adds the input estimate.
        output = rough_tokens(self._content_chars) if self._content_chars else 0
        return Metered(
            usage=Usage(output_tokens=output),
            response_model=self._model,
            estimated=True,
            complete=False,
            error_type=self._error,
        )
