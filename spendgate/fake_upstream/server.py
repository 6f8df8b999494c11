"""Running the fake under uvicorn: in a background thread for tests, or in the foreground for the CLI."""

from __future__ import annotations

import copy
import importlib.util
import socket
from types import TracebackType

import uvicorn
from starlette.applications import Starlette
from uvicorn.config import LOGGING_CONFIG

from spendgate.fake_upstream.app import create_fake_app
from spendgate.fake_upstream.settings import FakeSettings, RecordedRequest
from spendgate.fake_upstream.streaming import install_cut_log_filter
from spendgate.servethread import ServerThread, base_url, bind_socket

__all__ = ["FakeUpstream", "base_url", "bind_socket", "serve_forever"]


def make_server(app: Starlette, *, configure_logging: bool) -> uvicorn.Server:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    config = uvicorn.Config(
        app,
        loop=loop,
        http="httptools",
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
        # In-process use must not reconfigure the host's logging (e.g. pytest's handlers).
        log_config=copy.deepcopy(LOGGING_CONFIG) if configure_logging else None,
    )
    install_cut_log_filter()
    return uvicorn.Server(config)


def serve_forever(settings: FakeSettings, sock: socket.socket) -> None:
    """Serve on an already bound socket until interrupted (the CLI entry point)."""
    make_server(create_fake_app(settings), configure_logging=True).run(sockets=[sock])


class FakeUpstream:
    """``with FakeUpstream() as fake:`` runs the fake on a free loopback port in a background thread."""

    def __init__(self, settings: FakeSettings | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.settings = settings or FakeSettings()
        self.host = host
        self.port = port
        self.app = create_fake_app(self.settings)
        self.url = ""  # set on start, e.g. http://127.0.0.1:54321 (the Anthropic base URL)
        self.openai_url = ""  # url + "/v1" (the OpenAI base URL)
        self._thread: ServerThread | None = None

    @property
    def requests(self) -> list[RecordedRequest]:
        """The recorded requests, oldest first (a snapshot)."""
        return list(self.app.state.fake.recorded)

    def clear(self) -> None:
        self.app.state.fake.recorded.clear()

    def start(self) -> FakeUpstream:
        if self._thread is not None:
            raise RuntimeError("FakeUpstream is already running")
        install_cut_log_filter()
        thread = ServerThread(self.app, self.host, self.port, lifespan="off")
        self.url, self.port = thread.url, thread.port
        self.openai_url = self.url + "/v1"
        self._thread = thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
