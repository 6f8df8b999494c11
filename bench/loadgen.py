"""A bounded asyncio load generator: N Anthropic Messages calls at concurrency C, JSON or streamed.

Sends an unmeasured warm-up first, then exactly --requests calls (or fewer, if --max-seconds
runs out first) from --concurrency workers over keep-alive connections, and prints one JSON
object on stdout: requests/s, p50/p99 latency in ms, and the error count.

    python bench/loadgen.py --url http://127.0.0.1:8787 --key sk-sg-... --requests 2000 \
        --concurrency 10 --mode stream
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

ANTHROPIC_VERSION = "2023-06-01"
STREAM_END = b"message_stop"


@dataclass(slots=True)
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    def fail(self, reason: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = reason[:300]


def request_body(stream: bool, model: str) -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Say hello to the benchmark in one short sentence."}],
    }
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


async def one_call(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes, stream: bool, tally: Tally
) -> None:
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            payload = await resp.read()  # the whole body: for a stream, every SSE event until EOF
            if resp.status != 200:
                tally.fail(f"HTTP {resp.status}: {payload[:200]!r}")
                return
            if stream and STREAM_END not in payload[-400:]:
                tally.fail(f"stream without {STREAM_END.decode()}: ...{payload[-200:]!r}")
                return
            if not stream and b'"usage"' not in payload:
                tally.fail(f"JSON body without usage: {payload[:200]!r}")
                return
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.fail(f"{type(exc).__name__}: {exc}")
        return
    tally.latencies.append(time.perf_counter() - started)


async def run_phase(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: bytes,
    stream: bool,
    total: int,
    concurrency: int,
    deadline: float,
) -> tuple[Tally, int, float]:
    """Send `total` calls from `concurrency` workers; stop taking new ones after `deadline`."""
    tally = Tally()
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < total and time.monotonic() < deadline:
            next_index += 1
            await one_call(session, url, headers, body, stream, tally)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, max(total, 1)))))
    return tally, next_index, time.perf_counter() - started


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    stream = args.mode == "stream"
    url = args.url.rstrip("/") + "/v1/messages"
    headers = {
        "x-api-key": args.key,
        "anthropic-version": ANTHROPIC_VERSION,
        "content-type": "application/json",
    }
    body = request_body(stream, args.model)
    timeout = aiohttp.ClientTimeout(total=args.request_timeout)
    connector = aiohttp.TCPConnector(limit=args.concurrency, force_close=False, keepalive_timeout=60)
    hard_stop = time.monotonic() + args.max_seconds
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        warm_deadline = min(hard_stop, time.monotonic() + args.max_seconds / 4)
        warm, _, _ = await run_phase(
            session, url, headers, body, stream, args.warmup, args.concurrency, warm_deadline
        )
        tally, sent, elapsed = await run_phase(
            session, url, headers, body, stream, args.requests, args.concurrency, hard_stop
        )
    lat = sorted(tally.latencies)
    ok = len(lat)
    return {
        "url": url,
        "mode": args.mode,
        "concurrency": args.concurrency,
        "requested": args.requests,
        "sent": sent,
        "ok": ok,
        "errors": tally.errors,
        "unsent": args.requests - sent,  # left out because --max-seconds ran out
        "timed_out": sent < args.requests,
        "warmup": args.warmup,
        "warmup_errors": warm.errors,
        "elapsed_s": round(elapsed, 4),
        "rps": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(lat, 50) * 1000, 3) if lat else None,
        "p90_ms": round(percentile(lat, 90) * 1000, 3) if lat else None,
        "p99_ms": round(percentile(lat, 99) * 1000, 3) if lat else None,
        "max_ms": round(lat[-1] * 1000, 3) if lat else None,
        "mean_ms": round(sum(lat) / ok * 1000, 3) if lat else None,
        "first_error": tally.first_error or warm.first_error,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="Base URL of the target (without /v1).")
    parser.add_argument("--key", required=True, help="Sent as x-api-key.")
    parser.add_argument("--requests", type=int, default=2000, help="Measured calls (after the warm-up).")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--mode", choices=("json", "stream"), default="json")
    parser.add_argument("--warmup", type=int, default=None, help="Unmeasured calls first (default: ~10%%).")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="Hard cap on the whole run.")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="Per-call timeout (s).")
    parser.add_argument("--model", default="claude-haiku-4-5")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.max_seconds <= 0:
        parser.error("--requests, --concurrency and --max-seconds must be positive")
    if args.warmup is None:
        args.warmup = min(200, max(20, args.requests // 10, 2 * args.concurrency))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(main_async(args))
    else:
        result = uvloop.run(main_async(args))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
