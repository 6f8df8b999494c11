"""Instructions a call costs in Spendgate and in the bare proxy: the figure load does not move.

    python bench/instructions.py [--calls 200] [--modes json,stream] [--targets bare,spendgate]
                                 [--concurrency 1] [--env NAME=VALUE ...] [--baseline CHECKOUT]
                                 [--threads]

Timed figures on this shared 2-core machine move by a third from run to run (bench/run.py's bare
proxy has measured 2,500-7,000 req/s); instruction counts do not. Each target runs under valgrind
(callgrind, counting off until it is warm), then `--calls` sequential calls of each mode (the
same Messages request as bench/wrk.lua) are counted, in two rounds; with `--concurrency N`, N
connections send them at once (as wrk's c=N, so per-iteration and per-batch work is shared as
under load). Printed: instructions a call
for each target and mode (all threads of the serving process; not the kernel's work, nor a child
process such as the ingest process), and Spendgate's count as a multiple of the bare proxy's;
with `--threads`, also the event loop's thread alone (callgrind's --separate-threads): the ledger
writer thread's work, much of it in SQLite with the GIL released, is then apart. The
throughput target (>= 70 % of the bare proxy) needs that multiple at or under 1.43 where the
event loop is the bottleneck; instructions are not time (cache misses, system calls and waiting
for the GIL are not in them), so confirm with bench/run.py.

Everything talks to 127.0.0.1 only, and every loop is bounded.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import itertools
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
from harness import HOST, callgrind_round, callgrind_totals
from targets import Target, start_bare, start_fake, start_spendgate

BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Say hello to the benchmark in one short sentence."}],
}
MARKER = {"json": b'"usage"', "stream": b"message_stop"}


def count(
    target: Target, logs: Path, modes: list[str], calls: int, concurrency: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Instructions a call per mode, one figure per round: every thread's, and (with --threads)
    the event loop's own."""
    assert target.proc is not None
    bodies = {mode: orjson.dumps({**BODY, "stream": True} if mode == "stream" else BODY) for mode in modes}
    port = int(target.url.rsplit(":", 1)[1])
    local = threading.local()  # one keep-alive connection per client thread
    tag = f"{target.name}-{time.time_ns()}"

    def call(mode: str, n: int) -> None:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection(HOST, port, timeout=600)
        headers = {
            "x-api-key": target.key, "anthropic-version": "2023-06-01", "content-type": "application/json",
            "user-agent": "wrk", "x-client-request-id": f"{tag}-{mode}-{n}",
        }  # fmt: skip
        connection.request("POST", "/v1/messages", bodies[mode], headers)
        answer = connection.getresponse()
        data = answer.read()
        if answer.status != 200 or MARKER[mode] not in data:
            raise SystemExit(f"{target.name} {mode}: HTTP {answer.status}: {data[:200]!r}")

    numbers = itertools.count()
    with ThreadPoolExecutor(concurrency) as pool:

        def burst(mode: str, n: int) -> None:
            for future in [pool.submit(call, mode, next(numbers)) for _ in range(n)]:
                future.result()

        for mode in modes:  # warm: imports, caches, the pool's connections
            burst(mode, max(30, 2 * concurrency))
        for round_ in range(2):
            for mode in modes if round_ == 0 else list(reversed(modes)):
                callgrind_round(target.proc.pid, f"{mode}.{round_}", functools.partial(burst, mode, calls))
    # With --threads each round's dump is one file per thread ('.out.1-01': thread 1 is the main
    # thread, the event loop's); a round's figure is the sum over its threads either way.
    rounds: dict[str, dict[str, float]] = {}
    loop: dict[str, list[float]] = {mode: [] for mode in modes}
    for dump in sorted(logs.glob(f"callgrind-{target.name}.out.*")):
        for name, total in callgrind_totals([dump]):
            rounds.setdefault(name, {})[dump.name] = total / calls
            if dump.name.endswith("-01"):
                loop[name.split(".")[0]].append(total / calls)
    per_call: dict[str, list[float]] = {mode: [] for mode in modes}
    for name, threads in sorted(rounds.items(), key=lambda item: item[0].split(".")[1]):
        per_call[name.split(".")[0]].append(sum(threads.values()))
    return per_call, loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="Counted calls per mode and round.")
    parser.add_argument("--modes", default="json,stream")
    parser.add_argument("--targets", default="bare,spendgate")
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="Also count `sg-base`: the spendgate package of another checkout (e.g. "
                        "`git worktree add --detach /tmp/before <commit>`), for a before/after.")
    parser.add_argument("--concurrency", type=int, default=1, help="Connections sending at once.")
    parser.add_argument("--keep", action="store_true",
                        help="Keep callgrind's dumps (for callgrind_annotate) and print where.")
    parser.add_argument("--threads", action="store_true",
                        help="Also count the event loop's thread alone (the ledger writer thread apart).")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="An extra variable for Spendgate (repeatable).")
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise SystemExit(f"needs {tool} (apt-get install valgrind)")
    modes = args.modes.split(",")
    logs = Path(tempfile.mkdtemp(prefix="spendgate-instructions-"))
    fake = start_fake(logs, 0.0)
    results: dict[str, dict[str, list[float]]] = {}
    loops: dict[str, dict[str, list[float]]] = {}
    try:
        names = args.targets.split(",") + (["sg-base"] if args.baseline else [])
        for name in names:
            wrapper = ("valgrind", "--tool=callgrind", "--instr-atstart=no",
                       f"--callgrind-out-file={logs}/callgrind-{name}.out",
                       *(["--separate-threads=yes"] if args.threads else []))
            if name == "bare":
                target = start_bare(logs, fake, wrapper=wrapper)
            else:
                extra = dict(item.split("=", 1) for item in args.env)
                source = args.baseline if name == "sg-base" else None
                target = start_spendgate(
                    logs, fake, name, extra_env=extra or None, wrapper=wrapper, source=source
                )
            try:
                results[name], loops[name] = count(target, logs, modes, args.calls, args.concurrency)
            finally:
                target.stop()
    finally:
        fake.stop()
    settings = " ".join(args.env) or "default settings"
    print(f"instructions a call (callgrind, {args.calls} calls a round on {args.concurrency} "
          f"connection(s), 2 rounds; {settings}):")
    for name, per_mode in results.items():
        for mode, figures in per_mode.items():
            line = f"  {name:10} {mode:6} " + ", ".join(f"{f / 1e6:.3f}M" for f in figures)
            if name != "bare" and "bare" in results and results["bare"].get(mode):
                line += f"   x{statistics.mean(figures) / statistics.mean(results['bare'][mode]):.2f} of bare"
            print(line)
            loop = loops[name][mode]
            if args.threads and loop:
                figures = ", ".join(f"{f / 1e6:.3f}M" for f in loop)
                line = f"  {'':10} {'':6} {figures}   the event loop's thread"
                if name != "bare" and loops.get("bare", {}).get(mode):
                    line += f", x{statistics.mean(loop) / statistics.mean(loops['bare'][mode]):.2f} of bare's"
                print(line)
    if args.keep:
        print(f"callgrind dumps: {logs}/callgrind-*.out.*")
    else:
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
