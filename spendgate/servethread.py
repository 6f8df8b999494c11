"""Run an ASGI app under uvicorn in a background thread on a loopback port.

Used by the tests, the demo and the fake upstream: real HTTP, no mocks.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Literal

import uvicorn

from spendgate.config import Settings
from spendgate.connections import PROTOCOL, configure


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before starting uvicorn, so port 0 yields a known free port.

    The explicit IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted
    connections of a socket created with it, and without that Nagle's algorithm adds
    ~40 ms to small responses.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ServerThread:
    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        lifespan: Literal["auto", "on", "off"] = "on",
        log_config: dict[str, Any] | None = None,
        settings: Settings | None = None,
    ) -> None:
        """With a gateway's `settings`, its connection limits apply (as under `spendgate serve`)."""
        self._sock = bind_socket(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        self.url = base_url(self._sock)
        config = uvicorn.Config(
            app,
            loop="asyncio",
            http=PROTOCOL if settings is not None else "httptools",
            timeout_keep_alive=settings.keep_alive_timeout_s if settings is not None else 5,
            lifespan=lifespan,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
            # In-process use must not reconfigure the host's logging (e.g. pytest's handlers).
            log_config=log_config,
        )
        if settings is not None:
            configure(config, settings.header_timeout_s, settings.body_timeout_s, settings.max_concurrency)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="spendgate-server", daemon=True
        )

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server failed to start on {self.url}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(5)
        self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
