"""What every provider adapter offers: the small surface the pipeline needs.

An adapter parses the few request fields Spendgate needs (never rewriting the rest),
speaks the provider's error format, and meters usage from a JSON body or a stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

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


class ClientError(Exception):
    """Bad input, answered in the provider's error format before anything leaves."""

    def __init__(
        self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers or {}


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


@dataclass(slots=True)
class Metered:
    """What one call used, as far as the gateway could see."""

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
    name: str
    endpoint_path: str
    base_url: str

    def parse(self, body: bytes, path: str) -> RequestInfo: ...
    def upstream_body(self, body: bytes, info: RequestInfo, model: str) -> bytes: ...
    def upstream_headers(self, incoming: Mapping[str, str]) -> dict[str, str]: ...
    def error_body(self, status: int, error_type: str, message: str, request_id: str) -> bytes: ...
    def error_type_of(self, body: bytes) -> str | None: ...
    def meter_json(self, body: bytes) -> Metered: ...
    def stream_meter(self, info: RequestInfo) -> StreamMeter: ...
    def estimate_input_tokens(self, info: RequestInfo) -> int: ...
    def route_features(self, info: RequestInfo) -> tuple[bool, bool, int]:
        """(tools present, thinking/reasoning requested, number of messages), for routing."""
        ...


def forwardable_request_headers(incoming: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in incoming.items() if k.lower() not in _DROP_REQUEST}


def forwardable_response_headers(upstream: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in upstream.items() if k.lower() not in _DROP_RESPONSE}


def rough_tokens(chars: int) -> int:
    """The ~4 characters per token rule, for estimates only (a cut stream, a worst case)."""
    return max(1, -(-chars // 4))


def as_int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


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
