"""Endpoints that cost nothing and are relayed as they are: count_tokens and the model list."""

from __future__ import annotations

import aiohttp
from starlette.requests import Request
from starlette.responses import Response

from spendgate.gateway import Gateway
from spendgate.providers.base import ClientError, Provider, forwardable_response_headers
from spendgate.proxy import REQUEST_ID_HEADER, new_request_id, read_body
from spendgate.upstream import UpstreamUnavailable


async def relay(gw: Gateway, provider: Provider, request: Request, url: str) -> Response:
    request_id = new_request_id()
    try:
        await gw.keyring.authenticate(request.headers)
        body = None
        if request.method == "POST":
            declared = request.headers.get("content-length")
            body = await read_body(request.receive, declared, gw.settings.max_body_bytes)
        if body is not None:
            provider.parse(body, request.url.path)  # clear 400s for malformed JSON before it leaves
        upstream = await gw.upstream.send(
            request.method, url, provider.upstream_headers(request.headers), body
        )
    except ClientError as exc:
        error = provider.error_body(exc.status, exc.error_type, exc.message, request_id)
        return Response(
            error, exc.status, media_type="application/json", headers={REQUEST_ID_HEADER: request_id}
        )
    except UpstreamUnavailable as exc:
        error = provider.error_body(exc.status, "api_error", f"Spendgate: {exc.message}", request_id)
        return Response(
            error, exc.status, media_type="application/json", headers={REQUEST_ID_HEADER: request_id}
        )
    try:
        payload = await upstream.read()
    except aiohttp.ClientError:
        error = provider.error_body(
            502, "api_error", "Spendgate: the provider closed the connection", request_id
        )
        return Response(error, 502, media_type="application/json")
    finally:
        upstream.release()
    headers = forwardable_response_headers(upstream.headers)
    headers[REQUEST_ID_HEADER] = request_id
    return Response(payload, upstream.status, headers=headers)


def wants_anthropic(request: Request) -> bool:
    """`GET /v1/models` is shared by both APIs: Anthropic clients send their own headers."""
    headers = request.headers
    return "anthropic-version" in headers or "x-api-key" in headers
