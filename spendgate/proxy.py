"""The hot path, top to bottom: auth -> attribute -> route -> reserve -> forward -> meter -> settle -> record.

The two metered endpoints are raw ASGI apps (`ProxyEndpoint`), served in front of the Starlette
app: the body is read from `receive` and the answer goes out as `http.response.start` and
`http.response.body` messages, with no framework object per call or per chunk. Everything else
(admin API, /metrics, webhooks, count_tokens) stays on Starlette.

Nothing here waits on the database: keys and prices are in memory, and the ledger row
is appended to a journal and queued for the writer thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import aiohttp
from starlette.types import Message, Receive, Scope, Send

from spendgate.attribution import attribute
from spendgate.budgets.enforcer import CallScope
from spendgate.budgets.estimate import input_bound, worst_case_nanos
from spendgate.budgets.failover import CountersUnavailable
from spendgate.call import REQUEST_ID_HEADER, Call, Reply, StreamCut, new_request_id
from spendgate.forward import forward
from spendgate.gateway import Gateway
from spendgate.providers.base import ClientError, Provider, forwardable_response_headers
from spendgate.routing.explain import route_request_for
from spendgate.upstream import UpstreamUnavailable

__all__ = ["REQUEST_ID_HEADER", "ProxyEndpoint", "StreamCut", "handle_call", "new_request_id", "read_body"]


class ProxyEndpoint:
    """One metered endpoint (`/v1/messages`, `/v1/chat/completions`) as a raw ASGI app."""

    def __init__(self, gw: Gateway, provider: Provider, upstream_path: str) -> None:
        self.gw = gw
        self.provider = provider
        self.upstream_path = upstream_path  # appended to the provider's base URL

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await handle_call(self.gw, self.provider, self.upstream_path, scope, receive, send)


async def handle_call(
    gw: Gateway, provider: Provider, path: str, scope: Scope, receive: Receive, send: Send
) -> None:
    # ASGI header names are lower case; a repeated header keeps its last value (as forwarded before).
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    call = Call(gw, provider, scope["path"], headers)
    try:
        # 1. auth
        call.principal = principal = await gw.keyring.authenticate(headers)
        body = await read_body(receive, headers.get("content-length"), gw.settings.max_body_bytes)
        call.info = info = provider.parse(body, call.endpoint)
        # 2. attribute
        call.who = who = attribute(principal, headers, info.metadata)
        # 3. route: the policy picks the model; its price must be known to meter it
        wanted = route_request_for(provider, info, body, principal, who)
        route = gw.router.route(wanted)
        call.use_model(route.model, route.rule)
        # 4. reserve: rate limits, then every applicable budget's room for the worst case
        await call.acquire_rate_limit()
        if gw.budgets.active:
            assert call.price is not None
            worst = worst_case_nanos(
                call.price, input_bound(len(body)), info.max_tokens or gw.settings.budget_default_max_tokens
            )
            scope_of_call = CallScope(principal, who.use_case, who.tags, who.session_id)
            call.decision = await gw.budgets.reserve(scope_of_call, worst)
            if call.decision.blocked is not None:
                return await respond(send, call.budget_rejection(call.decision))
            for action in call.decision.amber_actions:
                if action.startswith("downgrade:"):  # a cheaper tier: the reservation still covers it
                    cheaper = gw.router.downgrade(wanted, route, action.removeprefix("downgrade:"))
                    if gw.pricer.cheaper(provider.name, cheaper.model, call.model):
                        call.use_model(cheaper.model, cheaper.rule)
        # 5. forward (with retries and fallbacks before any byte reaches the client)
        upstream = await forward(call, body, path, scope["query_string"].decode("latin-1"))
    except ClientError as exc:
        call.release()
        return await respond(send, call.error(exc.status, exc.error_type, exc.message, exc.headers))
    except CountersUnavailable as exc:
        call.release()
        kind = "overloaded_error" if provider.name == "anthropic" else "server_error"
        return await respond(send, call.error(503, kind, str(exc)))
    except UpstreamUnavailable as exc:
        call.record_failure(exc)
        kind = "timeout_error" if exc.status == 504 else "api_error"
        if provider.name == "openai":
            kind = "server_error"
        return await respond(send, call.error(exc.status, kind, f"Spendgate: {exc.message}"))
    call.upstream_request_id = upstream.headers.get("request-id") or upstream.headers.get("x-request-id")
    response_headers = forwardable_response_headers(upstream.headers)
    if call.decision is not None:
        response_headers.update(call.decision.headers)
    if call.model != info.model:
        response_headers["x-spendgate-model"] = call.model
    response_headers[REQUEST_ID_HEADER] = call.request_id
    if info.stream and upstream.status == 200 and "text/event-stream" in upstream.content_type:
        # 6-8. meter, settle, record (streamed): chunk by chunk, as they arrive
        start = {"type": "http.response.start", "status": 200, "headers": raw_headers(response_headers)}
        return await relay_stream(call, upstream, start, receive, send)
    # 6-8. meter, settle, record (non-streaming)
    try:
        payload = await upstream.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        call.record_failure(UpstreamUnavailable(502, "cut", str(exc)))
        message = "Spendgate: the provider closed the connection mid-response"
        return await respond(send, call.error(502, "api_error", message))
    finally:
        upstream.release()
    call.first_byte = time.time()
    call.settle_json(upstream.status, payload)
    await respond(send, Reply(upstream.status, response_headers, payload))


async def relay_stream(
    call: Call, upstream: aiohttp.ClientResponse, start: Message, receive: Receive, send: Send
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
    try:
        await send(start)
        await call.relay(upstream, send)
    except asyncio.CancelledError:
        if not state["gone"] or task.uncancel() > 0:
            raise  # cancelled by something else (shutdown): pass it on
    finally:
        state["done"] = True


async def respond(send: Send, reply: Reply) -> None:
    """A whole answer: headers with its length (and type), then the body."""
    headers = raw_headers(reply.headers)
    headers.append((b"content-length", str(len(reply.body)).encode()))
    if reply.media_type is not None and "content-type" not in reply.headers:
        headers.append((b"content-type", reply.media_type.encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


def raw_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The request body, refused past `limit` bytes (by its content-length, or as it arrives)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ClientError(
            413, "request_too_large", f"Request body exceeds Spendgate's limit of {limit} bytes."
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientError(400, "invalid_request_error", "The client disconnected while sending the body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ClientError(
                413, "request_too_large", f"Request body exceeds Spendgate's limit of {limit} bytes."
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
