"""Step 6, meter: what a call used and how it ended, from a whole answer or a relayed stream.

The provider reads usage (`Provider.meter_json`, `Provider.stream_meter`); this turns it into
what the ledger records: the HTTP status, the call's status (ok, upstream_error, stream_error,
stream_incomplete, upstream_cut, client_disconnected ...) and, when usage never arrived, an
estimate of the prompt instead of $0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import aiohttp
from starlette.types import Send

from spendgate.errors import UpstreamCut, UpstreamUnavailable
from spendgate.pricing import Usage, new_tuple
from spendgate.providers.base import Metered, Provider, RequestInfo, StreamMeter


class Measured(NamedTuple):
    """What the meter saw of one call, as the ledger records it."""

    status_code: int
    status: str
    metered: Metered
    streamed: bool
    first_byte: float | None = None  # when the answer's first byte arrived (JSON: its last)


def measure_json(provider: Provider, info: RequestInfo, status_code: int, payload: bytes) -> Measured:
    """A whole answer (read by now): its usage, or its error type."""
    first_byte = time.time()
    try:
        metered = provider.meter_json(status_code, payload)
    except (ValueError, AttributeError, TypeError):
        metered = Metered(usage=Usage(), estimated=True, error_type="unparseable_response")
    if status_code >= 400:
        return Measured(status_code, "upstream_error", metered, False, first_byte)
    status = "ok" if metered.error_type is None else "stream_error"
    if metered.estimated:
        metered = with_prompt_estimate(provider, info, metered)
    # Measured(status_code, status, metered, streamed, first_byte)
    return new_tuple(Measured, (status_code, status, metered, False, first_byte))


def unanswered(exc: UpstreamUnavailable, streamed: bool) -> Measured:
    """No usable answer: nothing used, as far as anyone can tell."""
    return Measured(exc.status, f"upstream_{exc.kind}", Metered(usage=Usage(), error_type=exc.kind), streamed)


def refused_by_budget(streamed: bool) -> Measured:
    return Measured(429, "budget_blocked", Metered(usage=Usage(), error_type="budget_exceeded"), streamed)


def with_prompt_estimate(provider: Provider, info: RequestInfo, metered: Metered) -> Metered:
    """Usage never arrived: bill the prompt we sent rather than record $0."""
    if not metered.estimated or metered.usage.total_input:
        return metered
    prompt = provider.estimate_input_tokens(info)
    return metered._replace(usage=Usage(input_tokens=prompt, output_tokens=metered.usage.output_tokens))


async def relay(
    upstream: aiohttp.ClientResponse,
    meter: StreamMeter,
    send: Send,
    settle: Callable[[Measured], None],
    complete: Callable[[Metered], Metered],
) -> None:
    """Forward each upstream chunk as it arrives, metering a copy; the last message ends the body.

    `settle` is called exactly once: the moment the provider's last word is seen (so the row is
    journaled before the final bytes reach the client, and a crash after that loses nothing), or
    when the stream ends, is cut or the client goes away. `complete` fills in an estimate when
    usage never arrived (`with_prompt_estimate`).
    """
    content = upstream.content
    first_byte: float | None = None
    settled = False
    status, error_type = "ok", None
    try:
        last = b""
        async for chunk in content.iter_any():
            if first_byte is None:
                first_byte = time.time()
            out = meter.feed(chunk)
            if meter.finished and not settled:
                settled = True
                result = meter.result()
                ended = "ok" if result.error_type is None else "stream_error"
                # Measured(status_code, status, metered, streamed, first_byte)
                settle(new_tuple(Measured, (200, ended, complete(result), True, first_byte)))
            if content.at_eof():  # the provider has already ended: these bytes end our body too
                last = out
                break
            if out:
                await send({"type": "http.response.body", "body": out, "more_body": True})
        tail = meter.flush()
        if not settled:
            settled = True
            result = meter.result()
            if result.error_type is not None:
                status = "stream_error"
            elif not result.complete:
                status = "stream_incomplete"
            settle(Measured(200, status, complete(result), True, first_byte))
        await send({"type": "http.response.body", "body": last + tail, "more_body": False})
    except (aiohttp.ClientError, TimeoutError) as exc:
        status, error_type = "upstream_cut", type(exc).__name__
        raise UpstreamCut(f"the provider cut the stream ({error_type})") from None
    except BaseException:
        status, error_type = "client_disconnected", "client_disconnected"
        raise
    finally:
        if not settled:
            result = meter.result()
            result = result._replace(estimated=True, error_type=result.error_type or error_type)
            settle(Measured(200, status, complete(result), True, first_byte))
        if status == "ok":
            upstream.release()
        else:
            upstream.close()  # stop the provider generating tokens nobody will read
