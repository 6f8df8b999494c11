"""A minimal streaming response: precomputed events, optional pacing, optional abrupt cut."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:  # common.py does not import this module; the type is only named here
    from spendgate.fake_upstream.common import Controls


class StreamCut(Exception):
    """Raised mid-stream on purpose: the ASGI server then aborts the chunked body."""


class DropStreamCutLogs(logging.Filter):
    """Hides the server's traceback for deliberate cuts; real errors still get logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BaseExceptionGroup):
            return not exc.subgroup(StreamCut)
        return not isinstance(exc, StreamCut)


def install_cut_log_filter() -> None:
    """Attach the filter to uvicorn's error logger once."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, DropStreamCutLogs) for f in logger.filters):
        logger.addFilter(DropStreamCutLogs())


async def _client_left(receive: Receive, delay_s: float) -> bool:
    """Sleep ``delay_s`` but wake early when the client disconnects (the body is already read)."""
    try:
        message = await asyncio.wait_for(receive(), delay_s)
    except TimeoutError:
        return False
    if message["type"] == "http.disconnect":
        return True
    await asyncio.sleep(delay_s)  # unexpected message: keep the pacing anyway
    return False


class EventStreamResponse(Response):
    """Sends each event (or line) as its own body chunk, or, with `whole` and no delay, all of them
    in one. No task group per request: this is the hot path."""

    media_type = "text/event-stream"

    def __init__(
        self,
        events: list[bytes],
        *,
        headers: dict[str, str],
        delay_s: float = 0,
        cut: bool = False,
        media_type: str = "text/event-stream",
        whole: bool = False,
    ) -> None:
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.events = events
        self.delay_s = delay_s
        self.cut = cut
        self.whole = whole and not delay_s
        self.init_headers({"cache-control": "no-cache", **headers})

    @classmethod
    def as_asked(
        cls, events: list[bytes], headers: dict[str, str], controls: Controls
    ) -> EventStreamResponse:
        """A stream as the call's controls ask: paced by its chunk delay, cut by `stream-cut`, in one
        write by `x-fake-stream-chunks: whole` (or `--whole-streams`)."""
        cut = controls.mode == "stream-cut"
        delay_s, whole = controls.chunk_delay_s, controls.whole_stream
        return cls(events, headers=headers, delay_s=delay_s, cut=cut, whole=whole)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        if self.whole:  # one write; a cut stream still ends without its last chunk
            body = b"".join(self.events)
            if self.cut:
                await send({"type": "http.response.body", "body": body, "more_body": True})
                raise StreamCut("x-fake-mode: stream-cut")
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        delay = self.delay_s
        for i, event in enumerate(self.events):
            if delay > 0 and i and await _client_left(receive, delay):
                return
            await send({"type": "http.response.body", "body": event, "more_body": True})
        if self.cut:
            raise StreamCut("x-fake-mode: stream-cut")
        await send({"type": "http.response.body", "body": b"", "more_body": False})
