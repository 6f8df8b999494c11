"""What Spendgate's own steps cost per call, in process, with no network and no server stack.

    python bench/steps_bench.py [--calls 5000] [--rounds 5] [--tagged]

Builds a gateway on a fresh SQLite database in a temporary folder (the same `build_gateway` and
`build_endpoint` as `spendgate serve`), mints a key, then runs a bounded loop of calls through
the steps the proxy runs around the network: admission (auth, attribute, route, reserve: the
request id and header dict included), metering a JSON answer, and settlement (price, ledger row,
journal write, hand-off to the writer thread, metrics). The provider's answer is a fixed Messages
body; nothing is sent anywhere. Prints microseconds of the calling thread's CPU per call for each
part (`time.thread_time`, less the cost of reading that clock), best round of `--rounds`. The
ledger writer thread runs as in the server; its own CPU is not counted here, but its GIL
hand-offs and cache traffic slow this thread down as they do in the server.

Read it beside `bench/profile.py`: the difference between Spendgate's event-loop CPU per call and
the bare proxy's, minus this figure, is what the server stack costs more inside Spendgate than
in the bare proxy (a larger working set, the writer thread's GIL hand-offs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

REQUEST = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
}
ANSWER = {
    "id": "msg_bench",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5",
    "content": [{"type": "text", "text": "Hello there!"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "output_tokens": 5,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    },
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000, help="Calls per round.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--tagged", action="store_true", help="Declare the use case in x-spendgate-tags (no inference)."
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="spendgate-steps-"))
    os.environ.update(
        SPENDGATE_DATABASE_URL=f"sqlite:///{workdir / 'spendgate.db'}",
        SPENDGATE_SPOOL_DIR=str(workdir / "spool"),
        SPENDGATE_ANTHROPIC_API_KEY="bench-provider-key",
        SPENDGATE_ANTHROPIC_BASE_URL="http://127.0.0.1:9",  # never called
        SPENDGATE_LOG_LEVEL="warning",
    )
    # Imported after the environment is set: Settings reads it.
    from spendgate.admin.service import create_key
    from spendgate.app import build_endpoint, build_gateway
    from spendgate.config import Settings
    from spendgate.forward import Attempts
    from spendgate.meter import measure_json
    from spendgate.proxy import new_request_id
    from spendgate.settlement import Settlement

    gw = build_gateway(Settings())
    gw.store.create_org("bench")
    gw.store.create_team("bench", "bench", "BENCH")
    _, key = create_key(gw.store, name="bench", team="bench")
    gw.keyring.reload()
    gw.ledger.start()  # the writer thread, as the server's lifespan starts it
    settlement = Settlement(gw.budgets, gw.ledger, gw.metrics)
    endpoint = build_endpoint(gw, gw.anthropic, settlement)
    body, answer = orjson.dumps(REQUEST), orjson.dumps(ANSWER)
    raw = [
        (b"host", b"127.0.0.1:8787"),
        (b"content-type", b"application/json"),
        (b"anthropic-version", b"2023-06-01"),
        (b"x-api-key", key.encode()),
        (b"x-client-request-id", b"bench-1"),
        (b"content-length", str(len(body)).encode()),
    ]
    if args.tagged:
        raw.append((b"x-spendgate-tags", b"use_case=code-review"))
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/v1/messages",
        "query_string": b"",
        "headers": raw,
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    clock = time.thread_time  # this thread's CPU: not the writer's, nor waits for the GIL or a core

    async def one_round(calls: int) -> tuple[float, float, float]:
        admit = meter = settle = 0.0
        for _ in range(calls):
            t0 = clock()
            request_id, started = new_request_id(), time.time()
            headers = endpoint.header_names.decode(scope["headers"])
            call = await endpoint.admission.admit(request_id, started, scope, headers, receive)
            t1 = clock()
            attempts = Attempts(1, call.model, call.price, None, time.time())
            measured = measure_json(gw.anthropic, call.info, 200, answer)
            t2 = clock()
            settlement.settle(call, attempts, measured)
            t3 = clock()
            admit, meter, settle = admit + t1 - t0, meter + t2 - t1, settle + t3 - t2
        reading = clock_cost()  # what one reading of the clock adds to each part
        return tuple((part / calls - reading) * 1e6 for part in (admit, meter, settle))  # type: ignore[return-value]

    def clock_cost() -> float:
        t0 = clock()
        for _ in range(1000):
            clock()
        return (clock() - t0) / 1000

    async def run() -> tuple[float, float, float]:
        await one_round(min(args.calls, 1000))  # warm-up
        gw.ledger.wait_idle(60)
        best: tuple[float, float, float] | None = None
        for _ in range(args.rounds):
            figures = await one_round(args.calls)
            if best is None or sum(figures) < sum(best):
                best = figures
            gw.ledger.wait_idle(60)  # the writer lands the round's rows before the next one
        assert best is not None
        return best

    try:
        admit, meter, settle = asyncio.run(run())
    finally:
        gw.ledger.stop()
        gw.store.close()
    use_case = "declared in x-spendgate-tags" if args.tagged else "inferred (no tags)"
    print(
        f"Spendgate's steps per call, in process, best of {args.rounds} x {args.calls} calls "
        f"(use case {use_case}):"
    )
    print(f"  admission (request id, headers, auth, attribute, route, reserve)  {admit:6.1f} us")
    print(f"  meter (a JSON answer)                                             {meter:6.1f} us")
    print(f"  settle and record (price, row, journal, writer queue, metrics)    {settle:6.1f} us")
    total = admit + meter + settle
    print(f"  total                                                             {total:6.1f} us")


if __name__ == "__main__":
    main()
