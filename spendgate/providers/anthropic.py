"""Anthropic Messages API adapter: `/v1/messages`, its SSE stream and its error format."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from spendgate import errors
from spendgate.errors import InvalidRequest, SpendgateError
from spendgate.pricing import Usage, new_tuple
from spendgate.providers.base import (
    MAX_NAME_CHARS,
    MAX_TOKEN_COUNT,
    ClientRequest,
    HeaderFilter,
    Metered,
    RequestInfo,
    RouteFeatures,
    UpstreamRequest,
    as_int,
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

# Spendgate's errors in Anthropic's words (https://docs.anthropic.com/en/api/errors).
ERROR_TYPES: dict[type[SpendgateError], str] = {
    errors.InvalidRequest: "invalid_request_error",
    errors.AuthenticationFailed: "authentication_error",
    errors.PermissionDenied: "permission_error",
    errors.UnknownEndpoint: "not_found_error",
    errors.MethodNotAllowed: "invalid_request_error",
    errors.ModelNotPriced: "not_found_error",
    errors.RequestTooLarge: "request_too_large",
    errors.RateLimited: "rate_limit_error",
    errors.BudgetExceeded: "rate_limit_error",
    errors.CountersUnavailable: "overloaded_error",
    errors.UpstreamUnavailable: "api_error",
    errors.UpstreamTimeout: "timeout_error",
}


class AnthropicProvider:
    name = "anthropic"
    path = "/v1/messages"
    request_id_header = "request-id"
    stream_content_type = "text/event-stream"

    def __init__(self, api_key: str | None, base_url: str = "https://api.anthropic.com") -> None:
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.headers = HeaderFilter()  # which of a call's headers go on to the provider

    def parse(self, body: bytes, path: str) -> RequestInfo:
        # json_object and read_token_limit, inline for a valid body; they refuse any other
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if type(data) is not dict:
            data = json_object(body)  # refuses it, with the reason
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("model: Field required (a model name string)")
        max_tokens = data.get("max_tokens")
        if type(max_tokens) is not int or not 1 <= max_tokens <= MAX_TOKEN_COUNT:
            max_tokens = read_token_limit(data, "max_tokens")  # None when absent; refuses the rest
        if path.endswith("/messages") and max_tokens is None:
            raise InvalidRequest("max_tokens: Field required (a positive integer)")
        if not isinstance(data.get("messages"), list):
            raise InvalidRequest("messages: Field required (a list)")
        # Most calls send neither `stream` nor `metadata`: no reader is called for an absent one.
        stream = "stream" in data and read_stream(data)
        metadata = read_metadata(data) if "metadata" in data else {}
        # In RequestInfo's field order: keyword arguments cost twice as much, on every call.
        return RequestInfo(model, stream, max_tokens, metadata, True, path, data)

    async def upstream_request(
        self, base_url: str, request: ClientRequest, info: RequestInfo, model: str
    ) -> UpstreamRequest:
        url = f"{base_url}/v1/messages?{request.query}" if request.query else f"{base_url}/v1/messages"
        body = self.upstream_body(request.body, info, model)
        return UpstreamRequest("POST", url, self.upstream_headers(request.headers), body)

    def upstream_body(self, body: bytes, info: RequestInfo, model: str) -> bytes:
        if model == info.model:
            return body  # forwarded byte for byte: no field dropped, `system` never reordered
        # Routed: only `model` changes; every other field keeps its value and order.
        return orjson.dumps({**info.body, "model": model})

    def upstream_headers(self, incoming: Mapping[str, str]) -> dict[str, str]:
        headers = self.headers.request(incoming)
        headers["accept-encoding"] = "identity"
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def error(self, exc: SpendgateError, request_id: str) -> tuple[int, dict[str, str], bytes]:
        kind = error_type(ERROR_TYPES, exc) or "api_error"
        body = {"type": "error", "error": {"type": kind, "message": exc.message}, "request_id": request_id}
        return exc.status, {}, orjson.dumps(body)

    def meter_json(self, status: int, body: bytes) -> Metered:
        if status >= 400:
            return Metered(usage=Usage(), error_type=_error_type_of(body))
        data = orjson.loads(body)
        raw = data.get("usage")
        # usage_from(), two calls less; Usage in field order (no reasoning_tokens from Anthropic)
        i, w5, w1, r, o, s, b = _fold(raw if isinstance(raw, dict) else {}, _NO_FIELDS)
        usage = new_tuple(Usage, (i, w5, w1, r, o, 0, s, b))
        model = data.get("model")
        if type(model) is not str or len(model) > MAX_NAME_CHARS or not model.isprintable():
            model = clean_text(model)  # the common case (a short printable name) kept as it is
        # Metered(usage, response_model, estimated, complete, error_type)
        return new_tuple(Metered, (usage, model, False, True, None))

    def stream_meter(self, info: RequestInfo) -> AnthropicStreamMeter:
        return AnthropicStreamMeter()

    def route_features(self, info: RequestInfo) -> RouteFeatures:
        body = info.body
        messages = body.get("messages")
        thinking = body.get("thinking")
        thinking_on = isinstance(thinking, dict) and thinking.get("type") in _THINKING
        if type(messages) is list and messages and type(last := messages[-1]) is dict:
            # last_turn's usual case inline: a plain-text last message carries no tool results
            role = last.get("role")
            role = role[:20] if isinstance(role, str) else ""
            if isinstance(last.get("content"), list):
                role, results = last_turn(messages, "tool_result")
            else:
                results = False
            count = len(messages)
        else:
            role, results = last_turn(messages, "tool_result")
            count = len(messages) if isinstance(messages, list) else 0
        return RouteFeatures(bool(body.get("tools")), thinking_on, count, role, results)

    def estimate_input_tokens(self, info: RequestInfo) -> int:
        return estimate_input_tokens(info.body)


_THINKING = ("enabled", "adaptive")  # thinking types that turn it on

# Anthropic usage as Usage's fields in order, less reasoning_tokens (Anthropic reports none):
# input, cache_write_5m, cache_write_1h, cache_read, output, web_search_requests, batch.
# A stream folds its events' usage into these plain values and builds one Usage at the end.
_Fields = tuple[int, int, int, int, int, int, bool]
_NO_FIELDS: _Fields = (0, 0, 0, 0, 0, 0, False)
_MAX = MAX_TOKEN_COUNT


def usage_from(raw: dict[str, Any], base: Usage | None = None) -> Usage:
    """Anthropic usage -> Usage. Fields absent from `raw` keep their value from `base`
    (the stream rule: message_start, then overwritten by message_delta)."""
    if base is None:
        return _usage(_fold(raw, _NO_FIELDS))
    b = base
    fields = (b.input_tokens, b.cache_write_5m_tokens, b.cache_write_1h_tokens, b.cache_read_tokens)
    return _usage(_fold(raw, (*fields, b.output_tokens, b.web_search_requests, b.batch)))


def _fold(raw: dict[str, Any], base: _Fields) -> _Fields:
    """`base` updated with the fields `raw` has (the rule of `usage_from`)."""
    # as_int() inlined (`v if type(v) is int and 0 < v <= _MAX else 0`): a call per count costs
    # more than the rest of the test, and this runs for every metered answer and stream.
    input_tokens, write_5m, write_1h, read, output, searches, batch = base
    creation = raw.get("cache_creation")
    if isinstance(creation, dict):
        v = creation.get("ephemeral_5m_input_tokens")
        write_5m = v if type(v) is int and 0 < v <= _MAX else 0
        v = creation.get("ephemeral_1h_input_tokens")
        write_1h = v if type(v) is int and 0 < v <= _MAX else 0
    elif "cache_creation_input_tokens" in raw:
        # Older responses carry only the total; it is all 5-minute writes.
        v = raw["cache_creation_input_tokens"]
        write_5m, write_1h = (v if type(v) is int and 0 < v <= _MAX else 0), 0
    tools = raw.get("server_tool_use")
    if isinstance(tools, dict):
        searches = as_int(tools.get("web_search_requests"))
    if "input_tokens" in raw:
        v = raw["input_tokens"]
        input_tokens = v if type(v) is int and 0 < v <= _MAX else 0
    if "cache_read_input_tokens" in raw:
        v = raw["cache_read_input_tokens"]
        read = v if type(v) is int and 0 < v <= _MAX else 0
    if "output_tokens" in raw:
        v = raw["output_tokens"]
        output = v if type(v) is int and 0 < v <= _MAX else 0
    if "service_tier" in raw:
        batch = raw["service_tier"] == "batch"
    return input_tokens, write_5m, write_1h, read, output, searches, batch


def _usage(f: _Fields) -> Usage:
    return new_tuple(Usage, (f[0], f[1], f[2], f[3], f[4], 0, f[5], f[6]))


# Events the stream meter recognises by their first bytes, in the usual `event: x` spelling.
_CONTENT_DELTA = b"event: content_block_delta"
_CONTENT_DELTA_LEN = len(_CONTENT_DELTA)
_SKIPPED = (b"event: ping", b"event: content_block_st")  # ping, content_block_start and _stop
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}'
# The two events with usage; both prefixes are _USAGE_AT bytes long, so the data is what follows.
_USAGE_EVENTS = (b"event: message_start\ndata: ", b"event: message_delta\ndata: ")
_USAGE_AT = 27
_START, _DELTA = _USAGE_EVENTS
_STOP = _MESSAGE_STOP + b"\n\n"


class AnthropicStreamMeter:
    """Reads a copy of the SSE stream; the client gets the upstream bytes unchanged.

    Most events are content deltas: they are recognised by their first bytes and only counted
    (for the estimate of a stream cut before its usage). Only the events that carry usage, an
    error or an unusual spelling are parsed as JSON.
    """

    __slots__ = ("_delta_chars", "_done", "_error", "_fields", "_model", "_pending", "_saw_delta", "finished")

    def __init__(self) -> None:
        self._pending = b""  # the start of an event whose end has not arrived
        self._fields = _NO_FIELDS
        self._model: str | None = None
        self._delta_chars = 0
        self._saw_delta = False
        self._done = False
        self._error: str | None = None
        # The provider's last word was seen (message_stop, or an error event): a plain attribute,
        # read by the relay after every chunk.
        self.finished = False

    def feed(self, chunk: bytes) -> bytes:
        # SSEBuffer.push, inline: this runs for every chunk of every stream.
        data = self._pending + chunk if self._pending else chunk
        # A one-byte search (memchr) rather than the two-byte one: a third of its instructions. A
        # lone \r makes the replace a copy that changes nothing.
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(b"\n\n") + 2  # the complete events end here; the rest waits for more
        if end < 2 or data[end - 3 : end - 2] == b"\n":
            # None complete yet, or a run of blank lines: split as the events arrived, left to right
            events = data.split(b"\n\n")
            self._pending = events.pop()
            self._events(events)
            return chunk
        self._pending = data[end:]
        # The stream's edges, in the usual spelling, without visiting every event: message_start
        # opens it, and once message_delta has brought the usage, what came between (content
        # deltas, pings, block starts and stops) changes nothing. A whole stream in one chunk
        # (the usual case under load) costs two small JSON parses and a few searches from its ends.
        start = 0
        if data.startswith(_START):
            line = data.find(b"\n", _USAGE_AT)
            if data[line : line + 2] == b"\n\n":  # one data line (-1: a slice that cannot match)
                self._parse(data[_USAGE_AT:line])
                start = line + 2
        at = data.rfind(_DELTA, start, end)
        if at >= 0 and (at == start or data[at - 2 : at] == b"\n\n"):
            line = data.find(b"\n", at + _USAGE_AT)
            if data[line : line + 2] == b"\n\n":
                self._parse(data[at + _USAGE_AT : line])
                if self._saw_delta:  # else it was not a usable message_delta: read every event
                    rest = line + 2
                    if rest < end:
                        tail = data[rest:end]
                        if tail == _STOP:
                            self._done = self.finished = True
                        else:
                            self._events(tail.split(b"\n\n")[:-1])
                    return chunk
        self._events((data[start:end] if start or end < len(data) else data).split(b"\n\n")[:-1])
        return chunk

    def _events(self, events: list[bytes]) -> None:
        """Each complete event in turn: the general path."""
        for event in events:
            # A slice compared, not startswith(): bytes.startswith parses its arguments with
            # PyArg_ParseTuple, which costs more than the slice (most events are content deltas).
            if event[:_CONTENT_DELTA_LEN] == _CONTENT_DELTA:
                # Only needed if the stream is cut before message_delta: count, don't parse.
                if len(event) > 113:
                    self._delta_chars += len(event) - 113
            elif event == _MESSAGE_STOP:
                self._done = self.finished = True
            elif event.startswith(_USAGE_EVENTS) and event.find(b"\n", _USAGE_AT) < 0:
                self._parse(event[_USAGE_AT:])  # one data line: no need to split the fields
            elif not event.startswith(_SKIPPED):
                self._read(event)

    def flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        if rest.strip():
            self._read(rest)
        return b""

    def _read(self, event: bytes) -> None:
        name, data = sse_fields(event)
        if name == b"content_block_delta":
            # Only needed if the stream is cut before message_delta: count, don't parse.
            self._delta_chars += max(0, len(data) - 80)
            return
        if name in (b"ping", b"content_block_start", b"content_block_stop") or not data:
            return
        self._parse(data)

    def _parse(self, data: bytes) -> None:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(payload, dict):
            self.on_event(payload)

    def count_delta(self, chars: int) -> None:
        """A content delta of about `chars` characters went by (for the estimate of a cut stream)."""
        self._delta_chars += chars

    def on_event(self, payload: dict[str, Any]) -> None:
        """One decoded stream event (also fed by the Bedrock meter, which unwraps them)."""
        kind = payload.get("type")
        if kind == "message_start":
            message = payload.get("message")
            if not isinstance(message, dict):
                message = {}
            model = message.get("model")
            if type(model) is not str or len(model) > MAX_NAME_CHARS or not model.isprintable():
                model = clean_text(model)  # the common case (a short printable name) kept as it is
            self._model = model
            usage = message.get("usage")
            self._fields = _fold(usage if isinstance(usage, dict) else {}, _NO_FIELDS)
        elif kind == "message_delta":
            usage = payload.get("usage")
            self._fields = _fold(usage if isinstance(usage, dict) else {}, self._fields)
            self._saw_delta = True
        elif kind == "message_stop":
            self._done = self.finished = True
        elif kind == "error":
            error = payload.get("error")
            self._error = (clean_text(error.get("type")) if isinstance(error, dict) else None) or "api_error"
            self.finished = True  # an error event is the provider's last word too

    def result(self) -> Metered:
        fields = self._fields
        estimated = not self._saw_delta
        if estimated:
            # Output unknown: estimate from the deltas seen, never record zero.
            seen = max(fields[4], rough_tokens(self._delta_chars) if self._delta_chars else 0)
            fields = (fields[0], fields[1], fields[2], fields[3], seen, fields[5], fields[6])
        complete = self._done and self._error is None
        i, w5, w1, r, o, s, b = fields  # Usage in field order (Anthropic reports no reasoning_tokens)
        usage = new_tuple(Usage, (i, w5, w1, r, o, 0, s, b))
        # Metered(usage, response_model, estimated, complete, error_type)
        return new_tuple(Metered, (usage, self._model, estimated, complete, self._error))


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """Upper-bound-ish input estimate from the prompt's size, for calls whose usage never arrived."""
    parts = [body.get("system"), body.get("messages"), body.get("tools")]
    return rough_tokens(sum(len(orjson.dumps(p)) for p in parts if p is not None))


def _error_type_of(body: bytes) -> str | None:
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return clean_text(error.get("type")) if isinstance(error, dict) else None
