"""The hot path, top to bottom: auth -> attribute -> route -> reserve -> forward -> meter -> settle -> record.

Nothing here waits on the database: keys and prices are in memory, and the ledger row
is appended to a journal and queued for the writer thread.
"""

from __future__ import annotations

import time

import aiohttp
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from spendgate.attribution import attribute
from spendgate.budgets.enforcer import CallScope
from spendgate.budgets.estimate import input_bound, worst_case_nanos
from spendgate.budgets.failover import CountersUnavailable
from spendgate.call import REQUEST_ID_HEADER, Call, StreamCut, new_request_id
from spendgate.forward import forward
from spendgate.gateway import Gateway
from spendgate.providers.base import ClientError, Provider, forwardable_response_headers
from spendgate.routing.explain import route_request_for
from spendgate.upstream import UpstreamUnavailable

__all__ = ["REQUEST_ID_HEADER", "StreamCut", "handle_call", "new_request_id", "read_body"]


async def handle_call(gw: Gateway, provider: Provider, request: Request, path: str) -> Response:
    call = Call(gw, provider, request)
    try:
        # 1. auth
        call.principal = principal = await gw.keyring.authenticate(request.headers)
        body = await read_body(request, gw.settings.max_body_bytes)
        call.info = info = provider.parse(body, request.url.path)
        # 2. attribute
        call.who = who = attribute(principal, request.headers, info.metadata)
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
            scope = CallScope(principal, who.use_case, who.tags, who.session_id)
            call.decision = await gw.budgets.reserve(scope, worst)
            if call.decision.blocked is not None:
                return call.budget_rejection(call.decision)
            for action in call.decision.amber_actions:
                if action.startswith("downgrade:"):  # a cheaper tier: the reservation still covers it
                    cheaper = gw.router.downgrade(wanted, route, action.removeprefix("downgrade:"))
                    if gw.pricer.cheaper(provider.name, cheaper.model, call.model):
                        call.use_model(cheaper.model, cheaper.rule)
        # 5. forward (with retries and fallbacks before any byte reaches the client)
        upstream = await forward(call, body, path, request.url.query)
    except ClientError as exc:
        call.release()
        return call.error(exc.status, exc.error_type, exc.message, exc.headers)
    except CountersUnavailable as exc:
        call.release()
        return call.error(
            503, "overloaded_error" if provider.name == "anthropic" else "server_error", str(exc)
        )
    except UpstreamUnavailable as exc:
        call.record_failure(exc)
        kind = "timeout_error" if exc.status == 504 else "api_error"
        if provider.name == "openai":
            kind = "server_error"
        return call.error(exc.status, kind, f"Spendgate: {exc.message}")
    call.upstream_request_id = upstream.headers.get("request-id") or upstream.headers.get("x-request-id")
    response_headers = forwardable_response_headers(upstream.headers)
    if call.decision is not None:
        response_headers.update(call.decision.headers)
    if call.model != info.model:
        response_headers["x-spendgate-model"] = call.model
    response_headers[REQUEST_ID_HEADER] = call.request_id
    is_stream = info.stream and upstream.status == 200 and "text/event-stream" in upstream.content_type
    if is_stream:
        return StreamingResponse(
            call.relay(upstream),
            status_code=upstream.status,
            headers=response_headers,
            media_type=None,
        )
    # 6-8. meter, settle, record (non-streaming)
    try:
        payload = await upstream.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        call.record_failure(UpstreamUnavailable(502, "cut", str(exc)))
        return call.error(502, "api_error", "Spendgate: the provider closed the connection mid-response")
    finally:
        upstream.release()
    call.first_byte = time.time()
    call.settle_json(upstream.status, payload)
    return Response(payload, status_code=upstream.status, headers=response_headers)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ClientError(
            413, "request_too_large", f"Request body exceeds Spendgate's limit of {limit} bytes."
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ClientError(
                    413, "request_too_large", f"Request body exceeds Spendgate's limit of {limit} bytes."
                )
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientError(
            400, "invalid_request_error", "The client disconnected while sending the body."
        ) from None
    return b"".join(chunks)
