"""What every provider adapter offers: the small surface the pipeline needs.

An adapter parses the few request fields Spendgate needs (never rewriting the rest),
builds each attempt, meters usage from a JSON body or a stream, and speaks the provider's
error format. A new upstream API is a new module next to this one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import orjson

from spendgate.errors import InvalidRequest, SpendgateError
from spendgate.pricing import Usage

# Never forwarded upstream: hop-by-hop, the client's credential, our own control headers.
_DROP_REQUEST = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "authorization",
        "x-api-key",
        "accept-encoding",
        "x-spendgate-tags",
        "x-spendgate-key",
    }
)
# Never copied back to the client: recomputed by our server or not valid after metering.
_DROP_RESPONSE = frozenset(
    {"content-length", "connection", "keep-alive", "transfer-encoding", "content-encoding", "date", "server"}
)


@dataclass(slots=True)  # built and read on every call: faster than a NamedTuple on 3.11; never assigned
class ClientRequest:
    """The call as the client sent it; forwarded untouched unless routing changes the model."""

    path: str
    query: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes


class UpstreamRequest(NamedTuple):
    """One attempt, exactly as it goes to the provider."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


@dataclass(slots=True)
class RequestInfo:
    """The fields of a request body the pipeline reads; the body itself travels untouched."""

    model: str
    stream: bool
    max_tokens: int | None
    metadata: dict[str, Any] = field(default_factory=dict)
    wants_usage_chunk: bool = True  # OpenAI: did the client itself ask for the usage chunk?
    path: str = ""  # the endpoint called
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)  # built and read on every call: faster than a NamedTuple on 3.11; never assigned
class RouteFeatures:
    """What routing and use-case inference read of a request body beyond its model: its shape,
    never its text."""

    tools: bool
    thinking: bool  # thinking / reasoning requested
    messages: int
    last_role: str = ""  # the role of the last message (or input item), "" when there is none
    tool_results: bool = False  # the last message hands back tool results: a turn of a tool loop


def last_turn(messages: Any, result_block: str | None) -> tuple[str, bool]:
    """(role, carries tool results) of the last message of a list, where tool results are content
    blocks of type `result_block` (Anthropic's `tool_result`) or keyed by it (Converse's
    `toolResult`); None: this API has no such blocks."""
    if not isinstance(messages, list) or not messages or not isinstance(last := messages[-1], dict):
        return "", False
    role = last.get("role")
    role = role[:20] if isinstance(role, str) else ""
    content = last.get("content")
    if result_block is None or not isinstance(content, list):  # e.g. a plain-text user turn
        return role, False
    results = any(
        isinstance(block, dict) and (block.get("type") == result_block or result_block in block)
        for block in content
    )
    return role, results


class Metered(NamedTuple):
    """What one call used, as far as the gateway could see. A NamedTuple, as the other values of
    the call path: immutable, and built in a third of a frozen dataclass's time."""

    usage: Usage
    response_model: str | None = None
    estimated: bool = False
    complete: bool = False
    error_type: str | None = None


class StreamMeter(Protocol):
    """Fed each upstream chunk in order; returns the bytes to send to the client."""

    @property
    def finished(self) -> bool:
        """The provider's end-of-stream marker was seen (message_stop / [DONE])."""
        ...

    def feed(self, chunk: bytes) -> bytes: ...
    def flush(self) -> bytes: ...
    def result(self) -> Metered: ...


class Provider(Protocol):
    """One upstream API, in the shape of an httpx transport: a request in, a request out, usage back.

    The adapter owns the API's vocabulary: which request fields matter, how an attempt is built
    (URL, credential, body), how usage reads in a body or a stream, and how an error looks.
    """

    name: str  # the ledger's `provider` and the price data's provider id
    path: str  # the metered endpoint Spendgate serves for it, e.g. /v1/messages (or a path prefix)
    request_id_header: str  # where the provider puts its id for an answer
    stream_content_type: str  # a streamed answer's content type, e.g. text/event-stream

    @property
    def base_url(self) -> str:
        """The primary deployment (a cloud may derive it from its region)."""
        ...

    def parse(self, body: bytes, path: str) -> RequestInfo:
        """The fields the pipeline needs; InvalidRequest when the body is not a valid call."""
        ...

    async def upstream_request(
        self, base_url: str, request: ClientRequest, info: RequestInfo, model: str
    ) -> UpstreamRequest:
        """One attempt at `base_url` with `model` (routed, downgraded or a fallback), with the
        provider's credential (async: a token or a signing key may need fetching first)."""
        ...

    def upstream_headers(self, incoming: Mapping[str, str]) -> dict[str, str]:
        """The client's headers as they go upstream: ours dropped, the provider's credential in."""
        ...

    def meter_json(self, status: int, body: bytes) -> Metered:
        """Usage of a whole answer; an error answer (status >= 400) has only its error type."""
        ...

    def stream_meter(self, info: RequestInfo) -> StreamMeter: ...
    def estimate_input_tokens(self, info: RequestInfo) -> int: ...
    def route_features(self, info: RequestInfo) -> RouteFeatures: ...

    def error(self, exc: SpendgateError, request_id: str) -> tuple[int, dict[str, str], bytes]:
        """`exc` in this API's own error format: status, extra headers, JSON body."""
        ...


def error_type(table: Mapping[type[SpendgateError], str], exc: SpendgateError) -> str | None:
    """The most specific entry for `exc` in an adapter's table of error types (or codes)."""
    for cls in type(exc).__mro__:
        found = table.get(cls)
        if found is not None:
            return found
    return None


def forwardable_response_headers(upstream: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in upstream.items() if k.lower() not in _DROP_RESPONSE}


_DROP_RESPONSE_RAW = frozenset(name.encode() for name in _DROP_RESPONSE)


class HeaderFilter:
    """Which headers go on: a request's to the provider (not the hop-by-hop ones, nor the client's
    credentials), the provider's raw answer headers to the client (not the hop-by-hop ones, nor
    any `x-spendgate-*`: those names are ours to set).

    Names already judged are remembered, so a call's headers are filtered with set lookups rather
    than by lower-casing every name again: the same few names come on every call. A name in
    _DROP_REQUEST as it stands is lower case, so it is dropped; a name met before is kept if it was
    kept then; only a name never met is lower-cased. Bounded, as the names are the client's (or the
    provider's) to choose: past `max_names`, a new name is judged afresh each time it comes. One
    per provider and per endpoint, built with them (nothing kept at module level).
    """

    __slots__ = ("_dropped_raw", "_kept_raw", "_kept_request", "max_names")

    def __init__(self, max_names: int = 1024) -> None:
        self.max_names = max_names
        self._kept_request: set[str] = set()
        self._kept_raw: set[bytes] = set()
        self._dropped_raw: set[bytes] = set()

    def request(self, incoming: Mapping[str, str]) -> dict[str, str]:
        """The headers whose names, lower-cased, are not in _DROP_REQUEST."""
        kept = self._kept_request
        return {k: v for k, v in incoming.items() if k not in _DROP_REQUEST and (k in kept or self._judge(k))}

    def raw_response(self, upstream: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The provider's header pairs as they came off the wire (no decoding, no re-encoding) that
        may reach the client; the wire's spelling of a name is the key remembered."""
        kept, dropped = self._kept_raw, self._dropped_raw
        return [
            pair
            for pair in upstream
            if pair[0] in kept or (pair[0] not in dropped and self._judge_raw(pair[0]))
        ]

    def _judge(self, name: str) -> bool:
        kept = name.lower() not in _DROP_REQUEST
        if kept and len(self._kept_request) < self.max_names:
            self._kept_request.add(name)
        return kept

    def _judge_raw(self, name: bytes) -> bool:
        lower = name.lower()
        kept = lower not in _DROP_RESPONSE_RAW and not lower.startswith(b"x-spendgate-")
        judged = self._kept_raw if kept else self._dropped_raw
        if len(judged) < self.max_names:
            judged.add(name)
        return kept


def rough_tokens(chars: int) -> int:
    """The ~4 characters per token rule, for estimates only (a cut stream, a worst case)."""
    return max(1, -(-chars // 4))


# A token count past this is no real call's (a 64-bit column would overflow on the cost long
# before): the provider's number is treated as missing, like a negative one.
MAX_TOKEN_COUNT = 1_000_000_000
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0 and C1 controls: NUL the database refuses
MAX_NAME_CHARS = 200  # a tag, a use case, a model name as the ledger keeps it


def as_int(value: Any) -> int:
    """A count from a provider's usage: a whole number in range, else 0 (`true` is no count)."""
    return value if type(value) is int and 0 < value <= MAX_TOKEN_COUNT else 0


def as_object(value: Any) -> dict[str, Any]:
    """A JSON object from a provider's answer, or {} when it is anything else."""
    return value if isinstance(value, dict) else {}


def clean_text(value: Any, limit: int = MAX_NAME_CHARS) -> str | None:
    """A string from a provider (model, error type) as the ledger may keep it: controls dropped,
    length capped; anything but a string is None."""
    if not isinstance(value, str):
        return None
    text: str = value if value.isprintable() else _CONTROL_CHARS.sub("", value)  # common case: no regex
    return text[:limit]


def has_control_chars(text: str) -> bool:
    return not text.isprintable() and _CONTROL_CHARS.search(text) is not None


def json_object(body: bytes) -> dict[str, Any]:
    """A request body as a JSON object; InvalidRequest (400) when it is not one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object")
    return data


def read_stream(data: Mapping[str, Any]) -> bool:
    """The `stream` field: absent, null or a boolean."""
    stream = data.get("stream")
    if stream is None or isinstance(stream, bool):
        return stream is True
    raise InvalidRequest("stream: must be a boolean (true or false)")


def read_token_limit(data: Mapping[str, Any], name: str) -> int | None:
    """An output-token limit (`max_tokens`): absent, null or a whole number from 1 to MAX_TOKEN_COUNT."""
    value = data.get(name)
    if value is None:
        return None
    if type(value) is not int or not 1 <= value <= MAX_TOKEN_COUNT:
        raise InvalidRequest(f"{name}: must be a whole number from 1 to {MAX_TOKEN_COUNT}")
    return value


_PLAIN = (str, int, float, bool, type(None))


def read_metadata(data: Mapping[str, Any]) -> dict[str, Any]:
    """`metadata`: absent, null or an object of plain values (both providers take only strings
    there); `use_case` a string and `tags` a string or an object of plain values."""
    metadata = data.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata: must be an object")
    for name, value in metadata.items():
        if name != "tags" and not isinstance(value, _PLAIN):
            raise InvalidRequest(f"metadata.{str(name)[:60]}: must be a plain value (a string)")
    use_case = metadata.get("use_case")
    if use_case is not None and not isinstance(use_case, str):
        raise InvalidRequest("metadata.use_case: must be a string")
    tags = metadata.get("tags")
    if not (
        tags is None
        or isinstance(tags, str)
        or (isinstance(tags, dict) and all(isinstance(v, _PLAIN) for v in tags.values()))
    ):
        raise InvalidRequest("metadata.tags: must be 'key=value,...' or an object of strings")
    return metadata


class SSEBuffer:
    """Splits a byte stream into complete SSE events (blank-line separated)."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def push(self, chunk: bytes) -> list[bytes]:
        data = self._pending + chunk if self._pending else chunk
        if b"\r\n" in data:
            data = data.replace(b"\r\n", b"\n")
        events = data.split(b"\n\n")
        self._pending = events.pop()
        return events

    def rest(self) -> bytes:
        pending, self._pending = self._pending, b""
        return pending


def sse_fields(event: bytes) -> tuple[bytes, bytes]:
    """(event name, data) of one SSE event; multi-line data joined with newlines."""
    name = b""
    data: list[bytes] = []
    for line in event.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    return name, b"\n".join(data)
