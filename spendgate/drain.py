"""Graceful shutdown: on SIGTERM a replica drains, then stops, so a rolling restart loses nothing.

A load balancer (HAProxy in `deploy/compose.yaml`, a Kubernetes Service) takes a moment to notice
that a replica is going away; a replica that closed its port at once would refuse the calls still
sent to it. So SIGTERM starts a drain:

1. for `SPENDGATE_DRAIN_DELAY_S` (default 5 s) the replica keeps serving, but `GET /readyz` answers
   503 so the balancer takes it out of rotation, and every response carries `connection: close` so
   neither clients nor the balancer send a further call down a pooled connection to it;
2. then uvicorn closes the listening socket and waits up to `SPENDGATE_DRAIN_TIMEOUT_S` (default
   120 s) for the calls in flight, streams included, to finish;
3. then the app's shutdown flushes the ledger writer's queue to the database (what it cannot write
   stays in the journal and is replayed by the next start), and the process exits.

A second SIGTERM, or SIGINT (Ctrl-C), skips the rest of step 1.

The handler is installed from the app's lifespan rather than by a server subclass so that it works
the same in `spendgate serve` and in each of its `--workers` processes (uvicorn runs every worker
with its own stock server). It wraps the server's own handler and hands the signal on after the delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

from starlette.types import Message, Send

log = logging.getLogger(__name__)


class Drain:
    """Whether this replica is draining, and the SIGTERM handler that starts it."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.started_at: float | None = None  # monotonic time the drain began

    @property
    def draining(self) -> bool:
        return self.started_at is not None

    def begin(self) -> None:
        if self.started_at is None:
            self.started_at = time.monotonic()
            log.info(
                "SIGTERM: draining; /readyz answers 503, the listener closes in %.1f s, then in-flight "
                "calls finish and the ledger is flushed",
                self.delay_s,
            )

    @contextlib.contextmanager
    def on_sigterm(self) -> Iterator[None]:
        """While inside, SIGTERM begins the drain and reaches the server's handler `delay_s` later.

        A no-op outside the main thread (a server run in a thread, as the tests and the demo do,
        receives no signals) and when nothing handles SIGTERM yet (no server to hand it on to)."""
        previous = signal.getsignal(signal.SIGTERM)
        if threading.current_thread() is not threading.main_thread() or not callable(previous):
            yield
            return
        loop = asyncio.get_running_loop()

        def handle(sig: int, frame: FrameType | None) -> None:
            if self.draining:  # asked again: stop waiting
                previous(sig, frame)
                return
            self.begin()
            # A signal handler may run in the middle of the loop's own bookkeeping: schedule from a
            # thread-safe entry point rather than touching the timer heap here.
            loop.call_soon_threadsafe(loop.call_later, self.delay_s, previous, sig, frame)

        signal.signal(signal.SIGTERM, handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)


def closing(send: Send) -> Send:
    """`send`, with `connection: close` on the response, so the connection is not reused."""

    async def send_closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await send(message)

    return send_closing
