"""The hot path, top to bottom: auth -> attribute -> route -> reserve -> forward -> meter -> settle -> record.

Each step hands the next a complete, immutable value: admission an `Admitted` (who, what for,
which model at which price, what it holds), forwarding a `Forwarded` (the provider's answer
and its attempts), the meter a `Measured`; settlement turns them into one ledger row. They are
NamedTuples: a frozen dataclass costs about five times as much to build (object.__setattr__ per
field), several microseconds a call here. Errors are Spendgate's own (`spendgate.errors`); the
provider says how they look on its wire.

The metered endpoints are raw ASGI apps (`ProxyEndpoint`), served in front of the Starlette
app: the body is read from `receive` and the answer goes out as `http.response.start` and
`http.response.body` messages, with no framework object per call or per chunk. Nothing here
waits on the database: keys and prices are in memory, and the ledger row is appended to a
journal and queued for the writer thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from starlette.types import Message, Receive, Scope, Send

from spendgate.admission import Admission, Admitted
from spendgate.errors import Refused, SpendgateError, UpstreamCut, UpstreamUnavailable
from spendgate.forward import Forwarded, Forwarding
from spendgate.meter import Measured, measure_json, refused_by_budget, relay, unanswered, with_prompt_estimate
from spendgate.providers.base import HeaderFilter, Provider
from spendgate.settlement import Settlement

__all__ = ["REQUEST_ID_HEADER", "ProxyEndpoint", "Reply", "new_request_id", "respond"]

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-spendgate-request-id"
REQUEST_ID_RAW = REQUEST_ID_HEADER.encode()


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole answer that Spendgate makes itself (an error, a refusal), sent in one go."""

    status: int
    headers: dict[str, str]
    body: bytes
    media_type: str | None = None  # sent as content-type, unless the headers carry one


def new_request_id() -> str:
    # Time-ordered prefix keeps ledger inserts append-mostly on the primary key index. The suffix
    # only has to be unique, not secret: `random` (reseeded in forked children) makes no system
    # call, where os.urandom would release the GIL to the ledger writer on every call.
    return f"sg-{time.time_ns():x}-{random.getrandbits(48):012x}"


class ProxyEndpoint:
    """One metered endpoint (`/v1/messages`, `/v1/chat/completions`) as a raw ASGI app."""

    def __init__(
        self, provider: Provider, admission: Admission, forwarding: Forwarding, settlement: Settlement
    ) -> None:
        self.provider = provider
        self.admission = admission
        self.forwarding = forwarding
        self.settlement = settlement
        self.header_names = HeaderNames()  # public: bench/steps_bench.py decodes as the server does
        self.answer_filter = HeaderFilter()  # which of the provider's headers reach the client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id, started = new_request_id(), time.time()
        headers = self.header_names.decode(scope["headers"])
        try:
            # 1-4. auth, attribute, route, reserve
            call = await self.admission.admit(request_id, started, scope, headers, receive)
        except Refused as exc:
            return await respond(send, self.error(exc, request_id))
        if call.refusal is not None:  # a budget has no room: 429, recorded as budget_blocked
            self.settlement.settle(call, None, refused_by_budget(call.info.stream))
            return await respond(send, self.error(call.refusal, request_id))
        try:
            # 5. forward, with retries and fallbacks before any byte reaches the client
            sent = await self.forwarding.forward(call)
        except UpstreamUnavailable as exc:  # nothing usable came back: 502/504, recorded
            self.settlement.settle(call, exc.attempts, unanswered(exc, call.info.stream))
            return await respond(send, self.error(exc, request_id))
        except BaseException as exc:  # a fallback model without a price; the client gone
            self.settlement.release(call)
            if isinstance(exc, Refused):
                return await respond(send, self.error(exc, request_id))
            raise
        upstream, response_headers = sent.response, answer_headers(call, sent, self.answer_filter)
        # The content type last: aiohttp parses it on first read, and a JSON call never needs it.
        if (
            call.info.stream
            and upstream.status == 200
            and self.provider.stream_content_type in upstream.content_type
        ):
            # 6-8. meter, settle and record as the stream is relayed, chunk by chunk
            start = {"type": "http.response.start", "status": 200, "headers": response_headers}
            return await self.relay_stream(call, sent, start, receive, send)
        # 6. meter
        try:
            payload = await upstream.read()
        except (aiohttp.ClientError, TimeoutError):
            cut = UpstreamCut("Spendgate: the provider closed the connection mid-response")
            self.settlement.settle(call, sent.attempts, unanswered(cut, call.info.stream))
            return await respond(send, self.error(cut, request_id))
        finally:
            upstream.release()
        measured = measure_json(self.provider, call.info, upstream.status, payload)
        # 7-8. settle and record: the row journaled before the answer goes, the rest once it has
        settled = self.settlement.record(call, sent.attempts, measured)
        try:
            await respond_raw(send, upstream.status, response_headers, payload)
        finally:
            self.settlement.after(settled)

    def error(self, exc: SpendgateError, request_id: str) -> Reply:
        """An error in the provider's own format, with our request id."""
        status, headers, body = self.provider.error(exc, request_id)
        headers = {**exc.headers, **headers, REQUEST_ID_HEADER: request_id}
        return Reply(status, headers, body, "application/json")

    async def relay_stream(
        self, call: Admitted, sent: Forwarded, start: Message, receive: Receive, send: Send
    ) -> None:
        """Relay a stream; a client that goes away cancels it, as Starlette's StreamingResponse did.

        `receive()` returns once the client disconnects or the response is complete; only the first
        cancels the relay (which then records the call as client_disconnected and closes upstream).
        """
        task = asyncio.current_task()
        assert task is not None
        state = {"done": False, "gone": False}

        def on_receive(watch: asyncio.Future[Message]) -> None:
            if not watch.cancelled():
                watch.exception()  # retrieved, so an error there is not logged as never retrieved
            if not state["done"]:
                state["gone"] = True
                task.cancel()

        watch = asyncio.ensure_future(receive())
        watch.add_done_callback(on_receive)
        settlement, settled = self.settlement, []

        def settle(measured: Measured) -> None:  # the row journaled before the stream's last bytes
            settled.append(settlement.record(call, sent.attempts, measured))

        complete = functools.partial(with_prompt_estimate, self.provider, call.info)
        try:
            await send(start)
            await relay(sent.response, self.provider.stream_meter(call.info), send, settle, complete)
        except UpstreamCut as exc:
            log.warning("upstream stream cut for %s: %s", call.request_id, exc.message)
            raise  # into the server, which aborts the response: the client sees the cut too
        except asyncio.CancelledError:
            if not state["gone"] or task.uncancel() > 0:
                raise  # cancelled by something else (shutdown): pass it on
        finally:
            state["done"] = True
            if settled:  # the budget, rate limit and metrics, once the stream has ended
                settlement.after(settled[0])


class HeaderNames:
    """A call's headers as a dict of str: ASGI header names are lower case; a repeated header keeps
    its last value (as forwarded before). The names are decoded once each (clients send the same
    few on every call) and remembered, at most MAX_NAMES of them; the values are decoded per call
    (one is the client's key: nothing is remembered by a value)."""

    MAX_NAMES = 256

    def __init__(self) -> None:
        self._names: dict[bytes, str] = {}

    def decode(self, raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
        names = self._names
        headers = {}
        for name, value in raw:
            text = names.get(name)
            if text is None:
                text = self._remember(name)
            headers[text] = value.decode("latin-1")
        return headers

    def _remember(self, name: bytes) -> str:
        if len(self._names) >= self.MAX_NAMES:
            self._names.clear()
        text = self._names[name] = name.decode("latin-1")
        return text


def answer_headers(call: Admitted, sent: Forwarded, kept: HeaderFilter) -> list[tuple[bytes, bytes]]:
    """The provider's headers that stay valid after metering, with the budget's and ours: raw
    pairs from the wire to the server, with no dict or str in between."""
    headers = kept.raw_response(sent.response.raw_headers)
    if call.budget is not None:
        budget = call.budget.headers
        if budget:
            names = {name.lower().encode("latin-1") for name in budget}
            headers = [(k, v) for k, v in headers if k.lower() not in names]  # the budget's win
            headers += raw_headers(budget)
    if sent.attempts.model != call.info.model:
        headers.append((b"x-spendgate-model", sent.attempts.model.encode("latin-1")))
    headers.append((REQUEST_ID_RAW, call.request_id.encode("latin-1")))
    return headers


async def respond(send: Send, reply: Reply) -> None:
    """A whole answer: headers with its length (and type), then the body."""
    headers = raw_headers(reply.headers)
    if reply.media_type is not None and "content-type" not in reply.headers:
        headers.append((b"content-type", reply.media_type.encode()))
    await respond_raw(send, reply.status, headers, reply.body)


async def respond_raw(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    """A whole answer from header pairs already encoded (the provider's, relayed)."""
    headers.append((b"content-length", b"%d" % len(body)))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def raw_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
