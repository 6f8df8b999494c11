"""The practical limit: a pass-through proxy on Spendgate's own server stack, doing nothing else.

Same stack as Spendgate (starlette routes, uvicorn with uvloop + httptools, one pooled
aiohttp ClientSession), but no auth, no metering, no ledger: it swaps in the provider
key and relays the response, streaming chunks as they arrive.

    python bench/bare_proxy.py --port 8790 --anthropic-base-url http://127.0.0.1:9999 \
        --openai-base-url http://127.0.0.1:9999/v1
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator, Mapping

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

# The same hop-by-hop and credential filtering Spendgate applies.
DROP_REQUEST = frozenset(
    {
        "host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "trailer",
        "upgrade", "proxy-authorization", "proxy-connection", "authorization", "x-api-key", "accept-encoding",
    }
)
DROP_RESPONSE = frozenset(
    {"content-length", "connection", "keep-alive", "transfer-encoding", "content-encoding", "date", "server"}
)


class Relay:
    """One pooled session; one method per provider route."""

    def __init__(self, anthropic_root: str, openai_root: str, anthropic_key: str, openai_key: str) -> None:
        self.anthropic_url = anthropic_root.rstrip("/") + "/v1/messages"
        self.openai_url = openai_root.rstrip("/") + "/chat/completions"
        self.anthropic_auth = {"x-api-key": anthropic_key}
        self.openai_auth = {"authorization": f"Bearer {openai_key}"}
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=1000, limit_per_host=0, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=600)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=True, skip_auto_headers=("User-Agent",)
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def messages(self, request: Request) -> Response:
        return await self.forward(request, self.anthropic_url, self.anthropic_auth)

    async def chat_completions(self, request: Request) -> Response:
        return await self.forward(request, self.openai_url, self.openai_auth)

    async def forward(self, request: Request, url: str, auth: Mapping[str, str]) -> Response:
        assert self.session is not None
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k not in DROP_REQUEST}
        headers["accept-encoding"] = "identity"
        headers.update(auth)
        try:
            upstream = await self.session.request(
                "POST", url, headers=headers, data=body, allow_redirects=False
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Response(f"bare proxy: upstream unreachable: {type(exc).__name__}", 502)
        out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in DROP_RESPONSE}
        if "text/event-stream" in upstream.content_type:
            return StreamingResponse(relay(upstream), status_code=upstream.status, headers=out_headers)
        try:
            payload = await upstream.read()
        finally:
            upstream.release()
        return Response(payload, status_code=upstream.status, headers=out_headers)


async def relay(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
    finally:
        upstream.release()


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_app(relayer: Relay) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await relayer.start()
        try:
            yield
        finally:
            await relayer.close()

    routes = [
        Route("/v1/messages", relayer.messages, methods=["POST"]),
        Route("/v1/chat/completions", relayer.chat_completions, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--anthropic-base-url", required=True, help="Root without /v1.")
    parser.add_argument("--openai-base-url", required=True, help="Root with /v1.")
    parser.add_argument("--anthropic-key", default="fake-anthropic-key")
    parser.add_argument("--openai-key", default="fake-openai-key")
    args = parser.parse_args()
    relayer = Relay(args.anthropic_base_url, args.openai_base_url, args.anthropic_key, args.openai_key)
    uvicorn.run(
        create_app(relayer), host=args.host, port=args.port, loop="uvloop", http="httptools",
        access_log=False, log_level="warning", lifespan="on",
    )


if __name__ == "__main__":
    main()
