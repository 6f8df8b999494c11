"""The practical limit: a pass-through proxy on Spendgate's own server stack, doing nothing else.

Same stack as Spendgate (uvicorn with uvloop + httptools, the two proxy routes as raw ASGI
in front of a Starlette app, one pooled aiohttp ClientSession), but no auth, no metering,
no ledger: it swaps in the provider key and relays the response, streaming chunks as they
arrive.

    python bench/bare_proxy.py --port 8790 --anthropic-base-url http://127.0.0.1:9999 \
        --openai-base-url http://127.0.0.1:9999/v1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Mapping

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

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
        self.app: Starlette | None = None  # everything but the two proxy routes

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=1000, limit_per_host=0, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=600)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=True, skip_auto_headers=("User-Agent",)
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The two proxy routes as raw ASGI (as Spendgate serves them); the rest goes to Starlette."""
        if scope["type"] == "http" and scope["method"] == "POST":
            if scope["path"] == "/v1/messages":
                return await self.forward(scope, receive, send, self.anthropic_url, self.anthropic_auth)
            if scope["path"] == "/v1/chat/completions":
                return await self.forward(scope, receive, send, self.openai_url, self.openai_auth)
        assert self.app is not None
        await self.app(scope, receive, send)

    async def forward(
        self, scope: Scope, receive: Receive, send: Send, url: str, auth: Mapping[str, str]
    ) -> None:
        assert self.session is not None
        body = await read_body(receive)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        headers = {k: v for k, v in headers.items() if k not in DROP_REQUEST}
        headers["accept-encoding"] = "identity"
        headers.update(auth)
        try:
            upstream = await self.session.request(
                "POST", url, headers=headers, data=body, allow_redirects=False
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            message = f"bare proxy: upstream unreachable: {type(exc).__name__}".encode()
            return await respond(send, 502, [], message)
        out_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in upstream.headers.items()
            if k.lower() not in DROP_RESPONSE
        ]
        if "text/event-stream" in upstream.content_type:
            await send({"type": "http.response.start", "status": upstream.status, "headers": out_headers})
            return await relay(upstream, receive, send)
        try:
            payload = await upstream.read()
        finally:
            upstream.release()
        await respond(send, upstream.status, out_headers, payload)


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def relay(upstream: aiohttp.ClientResponse, receive: Receive, send: Send) -> None:
    """Chunks as they arrive; a client that disconnects cancels the relay (as in Spendgate)."""
    task = asyncio.current_task()
    assert task is not None
    state = {"done": False, "gone": False}

    def on_receive(watch: asyncio.Future[Message]) -> None:
        if not state["done"]:
            state["gone"] = True
            task.cancel()

    asyncio.ensure_future(receive()).add_done_callback(on_receive)
    try:
        last = b""
        async for chunk in upstream.content.iter_any():
            if upstream.content.at_eof():  # the upstream has ended: the last chunk ends our body too
                last = chunk
                break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": last, "more_body": False})
    except asyncio.CancelledError:
        if not state["gone"] or task.uncancel() > 0:
            raise
    finally:
        state["done"] = True
        upstream.release()


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_app(relayer: Relay) -> Relay:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await relayer.start()
        try:
            yield
        finally:
            await relayer.close()

    relayer.app = Starlette(routes=[Route("/healthz", healthz, methods=["GET"])], lifespan=lifespan)
    return relayer


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
    # The garbage collector as `spendgate serve` sets it (create_served_app): part of the stack,
    # so the comparison measures Spendgate's own work, not a runtime setting.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, *gc.get_threshold()[1:])
    uvicorn.run(
        create_app(relayer), host=args.host, port=args.port, loop="uvloop", http="httptools",
        access_log=False, log_level="warning", lifespan="on",
    )


if __name__ == "__main__":
    main()
