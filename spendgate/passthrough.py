"""Endpoints that cost nothing and are relayed as they are: count_tokens, the model list, stored
responses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
from starlette.requests import Request
from starlette.responses import Response

from spendgate.admission import read_body
from spendgate.errors import SpendgateError, UpstreamCut
from spendgate.gateway import Gateway
from spendgate.providers.base import Provider, UpstreamRequest, forwardable_response_headers
from spendgate.proxy import REQUEST_ID_HEADER, new_request_id


async def relay(
    gw: Gateway, provider: Provider, request: Request, url: str, *, parse: bool = True
) -> Response:
    """Relay one call unmetered; `parse`: check a POST body as the provider's metered endpoint would."""

    async def upstream_request() -> UpstreamRequest:
        await gw.keyring.authenticate(request.headers)
        body = None
        if request.method == "POST":
            declared = request.headers.get("content-length")
            body = await read_body(request.receive, declared, gw.settings.max_body_bytes)
        if body is not None and parse:
            provider.parse(body, request.url.path)  # clear 400s for malformed JSON before it leaves
        return UpstreamRequest(request.method, url, provider.upstream_headers(request.headers), body)

    return await _answer(gw, provider, upstream_request)


async def _answer(
    gw: Gateway, provider: Provider, upstream_request: Callable[[], Awaitable[UpstreamRequest]]
) -> Response:
    """Send what `upstream_request` builds and return the provider's answer as it is; a refusal or
    an upstream failure in the provider's own error format."""
    request_id = new_request_id()
    try:
        upstream = await gw.upstream.send(await upstream_request())
        try:
            payload = await upstream.read()
        except aiohttp.ClientError:
            raise UpstreamCut("Spendgate: the provider closed the connection") from None
        finally:
            upstream.release()
    except SpendgateError as exc:
        status, headers, error = provider.error(exc, request_id)
        headers[REQUEST_ID_HEADER] = request_id
        return Response(error, status, media_type="application/json", headers=headers)
    headers = forwardable_response_headers(upstream.headers)
    headers[REQUEST_ID_HEADER] = request_id
    return Response(payload, upstream.status, headers=headers)


def wants_anthropic(request: Request) -> bool:
    """`GET /v1/models` is shared by both APIs: Anthropic clients send their own headers."""
    headers = request.headers
    return "anthropic-version" in headers or "x-api-key" in headers


async def bedrock_profiles(gw: Gateway, request: Request) -> Response:
    """`GET /bedrock/inference-profiles`, relayed signed to Bedrock's control plane.

    Claude Code asks for the system-defined profiles at start, with no credential (it leaves
    signing to the gateway): that listing needs no key; any other needs a virtual key.
    """
    provider = gw.bedrock

    async def upstream_request() -> UpstreamRequest:
        system_defined = dict(request.query_params).get("type") == "SYSTEM_DEFINED"
        if not system_defined or "authorization" in request.headers or "x-api-key" in request.headers:
            await gw.keyring.authenticate(request.headers)
        query = request.url.query
        url = f"{provider.control_url}/inference-profiles" + (f"?{query}" if query else "")
        await provider.ready()
        return UpstreamRequest(
            "GET", url, provider.sign("GET", url, {"accept": "application/json"}, b""), None
        )

    return await _answer(gw, provider, upstream_request)
