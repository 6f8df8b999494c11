"""Step 5, forward: one pooled aiohttp session per gateway, shared by every call."""

from __future__ import annotations

import aiohttp

from spendgate.errors import UpstreamTimeout, UpstreamUnreachable
from spendgate.providers.base import UpstreamRequest


class Upstream:
    def __init__(self, connect_timeout_s: float, read_timeout_s: float, max_connections: int) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout_s, sock_read=read_timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, request: UpstreamRequest) -> aiohttp.ClientResponse:
        """The provider's answer (headers read, body not yet); UpstreamUnavailable if there is none."""
        assert self._session is not None, "Upstream.start() was not awaited"
        url = request.url
        try:
            return await self._session.request(
                request.method, url, headers=request.headers, data=request.body, allow_redirects=False
            )
        except TimeoutError:
            raise UpstreamTimeout(f"Spendgate: the provider did not answer in time ({_host(url)})") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(
                f"Spendgate: the provider could not be reached ({_host(url)}): {type(exc).__name__}"
            ) from None


def _host(url: str) -> str:
    # Only scheme://host:port: never a query string or path that could carry a secret.
    parts = url.split("/", 3)
    return "/".join(parts[:3])
