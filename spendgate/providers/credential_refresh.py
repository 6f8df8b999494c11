"""A cloud credential's refresh: blocking (files, metadata endpoints, token grants), so it runs in a
thread, at most one at a time, ahead of need in the background or awaited when nothing usable is left.
A call only waits at first use and past expiry; otherwise it keeps the credential it has.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class CredentialRefresh:
    def __init__(self, refresh: Callable[[], None]) -> None:
        self._refresh = refresh  # blocking: fetches the credential and stores it on its owner
        self._running: asyncio.Task[None] | None = None

    async def ensure(self, *, usable: bool, due_soon: bool) -> None:
        """`usable`: what the owner holds can sign or authorise this call; `due_soon`: refresh it
        ahead (in the background) anyway."""
        if usable:
            if due_soon and self._running is None:
                self._running = asyncio.create_task(self._run())
            return
        if self._running is None:
            self._running = asyncio.create_task(self._run())
        await asyncio.shield(self._running)

    async def _run(self) -> None:
        try:
            await asyncio.to_thread(self._refresh)
        finally:
            self._running = None
