"""The Bedrock stream path beside the Anthropic one: what Spendgate adds to each, at the same load.

    python bench/cloud_bench.py [--seconds 5] [--rounds 3] [--concurrency 1] [--output-tokens 200]
                                [--meters-only] [--instructions N]

Starts the fake upstream and Spendgate (SigV4 signing with a test key, SPENDGATE_BEDROCK_BASE_URL on
the fake), then round after round runs wrk against four cells in turn: the Anthropic stream
(`/v1/messages`) and the Bedrock stream (`invoke-with-response-stream`, an AWS event stream), each
straight at the fake and through Spendgate, every call answered with the same `--output-tokens`.
Spendgate's overhead on a path is its p50 minus the fake's own on that path, so the fake's cost of
writing event streams cancels out; the figure the issue asks for is the Bedrock overhead minus the
Anthropic one (SigV4 signing plus event-stream decoding, target <= 0.2 ms). Medians over the
rounds; CPU per call of the Spendgate process too.

Latency and CPU time move with whatever else runs on the machine. `--instructions N` measures what
does not: Spendgate runs under valgrind (callgrind, counting off until it is warm) and N calls of
each path, one at a time, are counted in two rounds: instructions a call of each path and their
difference (slow: about a minute for N=100).

Everything talks to 127.0.0.1 only, and every run is bounded in time.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from harness import HOST, Proc, callgrind_round, callgrind_totals, free_port
from targets import Target, base_env, start_spendgate
from wrkload import Load, run_wrk

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
PATHS = {  # (path, on the fake, through Spendgate)
    "anthropic": ("/v1/messages", "/v1/messages"),
    "bedrock": (
        f"/model/{MODEL}/invoke-with-response-stream",
        f"/bedrock/model/{MODEL}/invoke-with-response-stream",
    ),
}
MODES = {"anthropic": "stream", "bedrock": "bedrock-stream"}
AWS = {  # a test identity: the fake does not check signatures here (its own cost would skew the figure)
    "AWS_ACCESS_KEY_ID": "AKIABENCHBENCHBENCH0",
    "AWS_SECRET_ACCESS_KEY": "bench-secret-not-a-real-one",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def meter_costs(fake_url: str, output_tokens: int) -> None:
    """The stream meters alone, in this process: µs a call for one whole stream (best of 15 runs),
    the same answer from the fake in each wire format."""
    import urllib.request

    import orjson

    from spendgate.providers.anthropic import AnthropicProvider
    from spendgate.providers.bedrock import BedrockProvider

    body = {"max_tokens": output_tokens + 10, "messages": [{"role": "user", "content": "hi"}]}
    paths = {"anthropic": "/v1/messages", "bedrock": PATHS["bedrock"][0]}
    bodies = {
        "anthropic": {**body, "model": "claude-haiku-4-5", "stream": True},
        "bedrock": {**body, "anthropic_version": "bedrock-2023-05-31"},
    }
    providers = {"anthropic": AnthropicProvider(None), "bedrock": BedrockProvider("us-east-1")}
    print(f"\nstream meters alone (best of 15 x 300 streams of {output_tokens} output tokens):")
    for name, provider in providers.items():
        request = urllib.request.Request(
            fake_url + paths[name],
            data=orjson.dumps(bodies[name]),
            headers={"anthropic-version": "2023-06-01"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            stream = answer.read()
        served = PATHS[name][1] if name == "bedrock" else paths[name]
        info = provider.parse(orjson.dumps(bodies[name]), served)
        best = float("inf")
        for _ in range(15):
            started = time.perf_counter()
            for _ in range(300):
                meter = provider.stream_meter(info)
                meter.feed(stream)
                meter.flush()
                meter.result()
            best = min(best, (time.perf_counter() - started) / 300 * 1e6)
        print(f"  {name:9} {best:6.0f} us a stream ({len(stream)} bytes)")


def instruction_counts(logs: Path, fake: Target, calls: int, output_tokens: int) -> None:
    """Instructions a call of each stream path through Spendgate under callgrind (all its threads;
    the kernel's work is not counted), `calls` sequential calls a path, in two rounds of opposite
    order; warmed up first with counting off."""
    import orjson

    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"--instructions needs {tool} (apt-get install valgrind)")
    out = logs / "callgrind.out"
    wrapper = ("valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}")
    spendgate = start_spendgate(logs, fake, wrapper=wrapper)
    assert spendgate.proc is not None
    body = {"max_tokens": output_tokens, "messages": [{"role": "user", "content": "Say hello."}]}
    bodies = {
        "anthropic": orjson.dumps({**body, "model": "claude-haiku-4-5", "stream": True}),
        "bedrock": orjson.dumps({**body, "anthropic_version": "bedrock-2023-05-31"}),
    }
    marker = {"anthropic": b"message_stop", "bedrock": b"eyJ0eXBlIjoibWVzc2FnZV9zdG9w"}
    per_call: dict[str, list[float]] = {path: [] for path in PATHS}
    try:
        connection = http.client.HTTPConnection(HOST, int(spendgate.url.rsplit(":", 1)[1]), timeout=120)

        def call(path: str, n: int) -> None:
            headers = {
                "x-api-key": spendgate.key, "anthropic-version": "2023-06-01",
                "content-type": "application/json", "x-client-request-id": f"cg-{path}-{n}-{time.time_ns()}",
            }  # fmt: skip
            connection.request("POST", PATHS[path][1], bodies[path], headers)
            answer = connection.getresponse()
            data = answer.read()
            if answer.status != 200 or marker[path] not in data:
                raise SystemExit(f"{path}: HTTP {answer.status}: {data[:200]!r}")

        for path in PATHS:
            for n in range(20):
                call(path, n)
        for n in range(2):
            for path in PATHS if n == 0 else reversed(PATHS):

                def work(path: str = path) -> None:
                    for i in range(calls):
                        call(path, i)

                callgrind_round(spendgate.proc.pid, f"{path}.{n}", work)
        connection.close()
    finally:
        spendgate.stop()
    for name, total in callgrind_totals(sorted(logs.glob("callgrind.out.*"))):
        per_call[name.split(".")[0]].append(total / calls)
    print(f"\ninstructions a call through Spendgate (callgrind, {calls} calls a round, "
          f"{output_tokens} output tokens):")
    for path, counts in per_call.items():
        print(f"  {path:9} " + ", ".join(f"{count / 1e6:.3f}M" for count in counts))
    extra = statistics.mean(per_call["bedrock"]) - statistics.mean(per_call["anthropic"])
    print(f"  Bedrock path adds {extra / 1e6:+.3f}M instructions a call over the Anthropic path")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--output-tokens", type=int, default=200, help="length of each streamed answer")
    parser.add_argument("--meters-only", action="store_true", help="only time the two stream meters")
    parser.add_argument("--instructions", type=int, metavar="N", help="count instructions (callgrind) "
                        "over N calls of each path instead of timing them")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="spendgate-cloud-bench-"))
    port = free_port()
    fake_argv = [
        sys.executable, "-m", "spendgate", "fake-upstream", "--host", HOST, "--port", str(port),
        "--output-tokens", str(args.output_tokens),
    ]  # fmt: skip
    fake = Proc("fake upstream", fake_argv, base_env(), logs / "fake.log")
    fake_url = f"http://{HOST}:{port}"
    fake.wait_ready(f"{fake_url}/api/hello", 30)
    if args.meters_only:
        meter_costs(fake_url, args.output_tokens)
        fake.stop()
        return
    os.environ.update(AWS, SPENDGATE_BEDROCK_BASE_URL=fake_url, SPENDGATE_BEDROCK_REGION="us-east-1")
    if args.instructions:
        try:
            target = Target("fake", fake_url, "unused", fake)
            instruction_counts(logs, target, args.instructions, args.output_tokens)
        finally:
            fake.stop()
        return
    spendgate = start_spendgate(logs, Target("fake", fake_url, "unused", fake))
    cells = [(path, via) for path in PATHS for via in ("direct", "spendgate")]
    p50: dict[tuple[str, str], list[float]] = {cell: [] for cell in cells}
    cpu: dict[str, list[float]] = {path: [] for path in PATHS}
    try:
        for n in range(args.rounds):
            for path, via in cells[n % len(cells) :] + cells[: n % len(cells)]:  # rotate the order
                url = fake_url if via == "direct" else spendgate.url
                load = Load(
                    url=url, key=spendgate.key, mode=MODES[path], concurrency=args.concurrency,
                    seconds=1, id_prefix=f"warm-{n}-{path}-{via}", path=PATHS[path][via == "spendgate"],
                    max_tokens=args.output_tokens,
                )  # fmt: skip
                run_wrk(load)  # warm-up
                assert spendgate.proc is not None
                before = spendgate.proc.cpu_s()
                result = run_wrk(replace(load, seconds=args.seconds, id_prefix=f"r{n}-{path}-{via}"))
                used = spendgate.proc.cpu_s() - before
                if result.get("errors") or not result.get("ok"):
                    raise SystemExit(f"{path} via {via}: {result.get('first_error')}")
                p50[path, via].append(result["p50_ms"])
                if via == "spendgate":
                    cpu[path].append(used / result["ok"] * 1000)
                rate = f"{result['rps']:.0f} calls/s"
                print(f"round {n + 1} {path:9} {via:9} p50 {result['p50_ms']:.3f} ms  {rate}")
        meter_costs(fake_url, args.output_tokens)
    finally:
        spendgate.stop()
        fake.stop()
    med = {cell: statistics.median(values) for cell, values in p50.items()}
    overhead = {path: med[path, "spendgate"] - med[path, "direct"] for path in PATHS}
    print(
        f"\nmedian of {args.rounds} rounds, c={args.concurrency}, {args.output_tokens} output tokens a call"
    )
    for path in PATHS:
        direct, through = med[path, "direct"], med[path, "spendgate"]
        print(
            f"  {path:9} direct p50 {direct:.3f} ms, through Spendgate {through:.3f} ms: "
            f"+{overhead[path]:.3f} ms; Spendgate CPU {statistics.median(cpu[path]):.3f} ms a call"
        )
    extra = overhead["bedrock"] - overhead["anthropic"]
    verdict = "within" if extra <= 0.2 else "OVER"
    print(f"  Bedrock path adds {extra:+.3f} ms p50 over the Anthropic path ({verdict} the 0.2 ms target)")
    cpu_extra = statistics.median(cpu["bedrock"]) - statistics.median(cpu["anthropic"])
    print(f"  and {cpu_extra:+.3f} ms of Spendgate CPU a call (signing and event-stream decoding)")
    load = os.getloadavg()[0]
    if load > (os.cpu_count() or 1):
        print(f"  warning: load average {load:.1f} on {os.cpu_count()} CPUs: other work skews these figures")


if __name__ == "__main__":
    main()
