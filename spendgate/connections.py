"""Connection hygiene: slow clients are answered 408 and closed, however slowly they send.

uvicorn times out idle keep-alive connections but not a request that never finishes arriving, so
200 slowloris connections (headers or body one byte at a time) stayed open forever. This is
uvicorn's httptools protocol with two deadlines: the request's headers must be complete within
`header_timeout_s` of its first byte (or of the connection), its body within `body_timeout_s` of
its headers. A deadline is a number on the connection, set twice per request (no cost per chunk:
an asyncio timer armed and cancelled twice per request cost about 2% of a call's CPU); one sweep
per server, every quarter of the shorter timeout (at most a second), answers the connections past
theirs, so a deadline fires up to that much late. The body's deadline ends with the body (the sweep
reads that in the request's cycle), however long the app then takes. A good call never notices.
Past `max_concurrency` open connections or requests in flight, a request is answered
503 at once. Every answer made here (408, 503, and the 400 for bytes that are not HTTP) is JSON that
reads as an error to both providers' SDKs, not uvicorn's plain text.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from spendgate.config import Settings

PROTOCOL = "spendgate.connections:TimedHttpToolsProtocol"  # what uvicorn's `http` option names


def _answer(status: str, kind: str, code: str, message: str) -> bytes:
    """A whole response, closing the connection; the body parses as an Anthropic and an OpenAI error."""
    error = {"type": kind, "message": f"Spendgate: {message}", "code": code, "param": None}
    body = orjson.dumps({"type": "error", "error": error})
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


_HEADERS_LATE = _answer(
    "408 Request Timeout", "timeout_error", "request_timeout", "the request's headers came too slowly."
)
_BODY_LATE = _answer(
    "408 Request Timeout", "timeout_error", "request_timeout", "the request's body came too slowly."
)
_BUSY = _answer(
    "503 Service Unavailable", "overloaded_error", "server_busy", "too many connections; retry shortly."
)
_NOT_HTTP = _answer(
    "400 Bad Request", "invalid_request_error", "invalid_request", "not a valid HTTP request."
)


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options for a gateway: this protocol, uvloop, and the keep-alive timeout."""
    return {"loop": "uvloop", "http": PROTOCOL, "timeout_keep_alive": settings.keep_alive_timeout_s}


def configure(config: Config, header_timeout_s: float, body_timeout_s: float, max_concurrency: int) -> None:
    """Give the protocol its limits (a Config travels to each worker process whole)."""
    config.spendgate_limits = (header_timeout_s, body_timeout_s, max_concurrency)  # type: ignore[attr-defined]


# The base class's callbacks, called directly: the overrides below run for every request, and
# a super() object costs about as much as the rest of such a method.
_begin = HttpToolsProtocol.on_message_begin
_headers_complete = HttpToolsProtocol.on_headers_complete
_body = HttpToolsProtocol.on_body
_message_complete = HttpToolsProtocol.on_message_complete


class TimedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, config: Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        limits: tuple[float, float, int] = getattr(config, "spendgate_limits", (0.0, 0.0, 0))
        self._header_timeout, self._body_timeout, self._max_concurrency = limits
        self._due = 0.0  # loop time by which the current phase must end (0: none)
        self._body_phase = False  # the phase `_due` is for: the request's body (else its headers)
        self._refused = False  # answered 503 before the app saw it: ignore the rest of its bytes

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self._header_timeout:
            self._due = self.loop.time() + self._header_timeout
        if self._header_timeout or self._body_timeout:
            _Sweep.ensure(self)

    # The phases' deadlines are set inline (no helper method): these run for every request.
    def on_message_begin(self) -> None:
        _begin(self)
        self._body_phase = False
        self._due = self.loop.time() + self._header_timeout if self._header_timeout else 0.0

    def on_headers_complete(self) -> None:
        limit = self._max_concurrency
        if limit and (len(self.connections) > limit or len(self.tasks) >= limit):
            self._due = 0.0
            self._refused = True
            self._close_with(_BUSY)
            return
        _headers_complete(self)
        # The body's deadline replaces the headers'. It is not cleared when the body is complete:
        # the sweep reads that in the request's cycle (check_deadline), at no cost per request.
        self._body_phase = True
        self._due = self.loop.time() + self._body_timeout if self._body_timeout else 0.0

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            _body(self, body)

    def on_message_complete(self) -> None:
        if not self._refused:
            _message_complete(self)

    def send_400_response(self, msg: str) -> None:
        self._close_with(_NOT_HTTP)

    def connection_lost(self, exc: Exception | None) -> None:
        self._due = 0.0
        super().connection_lost(exc)

    def check_deadline(self, now: float) -> None:
        """Called by the sweep: answer and close if the current phase is past its deadline."""
        if self._due and now >= self._due:
            self._due = 0.0
            if not self._body_phase:
                self._headers_late()
            elif self.cycle is not None and self.cycle.more_body:  # else the whole body came in time
                self._body_late()

    def _headers_late(self) -> None:
        self._close_with(_HEADERS_LATE)

    def _body_late(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            return  # the app already answered (e.g. refused the body early): leave that answer be
        if cycle is not None:
            # The app sees the client gone: it stops waiting for the body and answers no one.
            cycle.disconnected = True
            cycle.message_event.set()
        self._close_with(_BODY_LATE)

    def _close_with(self, response: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()


class _Sweep:
    """One periodic check of every connection's deadline, per server (kept on uvicorn's ServerState)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: set[Any], interval_s: float) -> None:
        self._loop = loop
        self._connections = connections
        self._interval = interval_s
        loop.call_later(interval_s, self._run)

    @staticmethod
    def ensure(protocol: TimedHttpToolsProtocol) -> None:
        state = protocol.server_state
        if getattr(state, "spendgate_sweep", None) is None:
            shortest = min(t for t in (protocol._header_timeout, protocol._body_timeout) if t)
            interval = min(max(shortest / 4, 0.05), 1.0)
            state.spendgate_sweep = _Sweep(protocol.loop, protocol.connections, interval)  # type: ignore[attr-defined]

    def _run(self) -> None:
        now = self._loop.time()
        for connection in list(self._connections):
            check = getattr(connection, "check_deadline", None)
            if check is not None:
                check(now)
        self._loop.call_later(self._interval, self._run)
