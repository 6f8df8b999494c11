"""Delivery with retries: each (message, channel) is its own task, retried with exponential backoff,
every attempt recorded in `alert_deliveries`. Failures are logged and recorded, never raised: an
alert that cannot be delivered must not disturb anything else (least of all the request path)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import aiohttp

from spendgate.alerts.channels import AlertMessage, DeliveryError, send
from spendgate.alerts.config import Channel
from spendgate.clock import utc_now_iso
from spendgate.store.alerts import AlertStore

log = logging.getLogger(__name__)


class Deliverer:
    """Owns one aiohttp session and the in-flight delivery tasks. Use as an async context manager."""

    def __init__(
        self,
        store: AlertStore,
        *,
        attempts: int = 5,
        base_delay_s: float = 2.0,
        max_delay_s: float = 300.0,
        timeout_s: float = 10.0,
        on_result: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.store = store
        self._on_result = on_result  # e.g. Metrics.alert_delivered(channel, ok)
        self.attempts = max(1, attempts)
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[bool]] = set()

    async def __aenter__(self) -> Deliverer:
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, wait_s: float = 0.0) -> None:
        if wait_s > 0:
            await self.drain(wait_s)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def dispatch(self, msg: AlertMessage, channels: Sequence[Channel]) -> None:
        """Start delivering in the background; returns at once."""
        for channel in channels:
            task = asyncio.get_running_loop().create_task(self.deliver(msg, channel))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait for the deliveries in flight (the CLI and tests wait; the gateway does not)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def deliver(self, msg: AlertMessage, channel: Channel) -> bool:
        """Send with retries; True once delivered. Every attempt leaves a row."""
        ok = await self._deliver(msg, channel)
        if self._on_result is not None:
            self._on_result(channel.type, ok)  # the channel type: a bounded label
        return ok

    async def _deliver(self, msg: AlertMessage, channel: Channel) -> bool:
        if self._session is None:
            raise RuntimeError("Deliverer used outside 'async with'")
        for attempt in range(1, self.attempts + 1):
            status: int | None = None
            try:
                status = await send(channel, msg, self._session, self.timeout_s)
            except DeliveryError as exc:
                await self._record(msg, channel, attempt, "failed", exc.status, str(exc))
                log.warning(
                    "alert %s to %s failed (attempt %d/%d): %s",
                    msg.alert_id,
                    channel.name,
                    attempt,
                    self.attempts,
                    exc,
                )
                if attempt == self.attempts:
                    return False
                delay = min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s)
                await asyncio.sleep(max(delay, min(exc.retry_after or 0.0, self.max_delay_s)))
                continue
            except Exception as exc:  # a bug must not kill the loop: record and give up
                log.exception("alert %s to %s: unexpected error", msg.alert_id, channel.name)
                await self._record(msg, channel, attempt, "failed", None, f"{type(exc).__name__}: {exc}")
                return False
            await self._record(msg, channel, attempt, "delivered", status or None, None)
            return True
        return False

    async def _record(
        self,
        msg: AlertMessage,
        channel: Channel,
        attempt: int,
        status: str,
        http: int | None,
        error: str | None,
    ) -> None:
        try:
            await asyncio.to_thread(
                self.store.record_alert_delivery,
                alert_id=msg.alert_id,
                channel=channel.name,
                action=msg.action,
                attempt=attempt,
                status=status,
                at=utc_now_iso(),
                http_status=http,
                error=error,
            )
        except Exception:
            log.exception("could not record the delivery of alert %s", msg.alert_id)
