"""How much one build's figures move from cell to cell: the same targets, short cells back to back.

    python bench/drift.py [--targets bare,spendgate] [--mode json|stream] [--concurrency 50]
                          [--cells 3] [--seconds 5] [--env NAME=VALUE ...] [--burn BUSY/PERIOD]

Starts the fake upstream and each target once (as bench/run.py does), warms each up, then runs
`--cells` wrk cells against each target in turn, round after round, and prints one line a cell:
req/s, p50/p90/p99/max latency, and the CPU a call of the serving process and of its children
(Spendgate's ingest process) from /proc. bench/run.py keeps the best of two rounds per cell; this
shows the spread behind that best, which on a shared VM can be as large as the gap being measured
(docs/benchmarks.md, "sixth pass").

`--burn 0.03/0.15` runs a side process that keeps one CPU busy for 30 ms of every 150 ms while
the cells run (the shape of a ledger landing pass), to see what CPU work beside a target does to
its figures; the burner is bounded by the run's length and stops with it.

Everything talks to 127.0.0.1 only, and every load run is bounded in time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import cpu_seconds
from targets import Target, start_bare, start_fake, start_spendgate
from wrkload import Load, run_wrk

BURNER = """
import sys, time
busy, period, end = float(sys.argv[1]), float(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    started = time.monotonic()
    while time.monotonic() - started < busy:
        pass
    time.sleep(max(0.0, period - busy))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="bare,spendgate", help="bare and/or spendgate")
    parser.add_argument("--mode", choices=("json", "stream"), default="json")
    parser.add_argument("--stream-chunks", choices=("whole", "event"), default="whole",
                        help="How the fake writes a stream (as bench/run.py).")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--cells", type=int, default=3, help="Cells a target, interleaved.")
    parser.add_argument("--seconds", type=int, default=5, help="wrk seconds a cell.")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="An extra variable for Spendgate (repeatable).")
    parser.add_argument("--burn", metavar="BUSY/PERIOD",
                        help="A side CPU burner: BUSY seconds of every PERIOD, e.g. 0.03/0.15.")
    args = parser.parse_args()
    if not 1 <= args.cells <= 20 or not 1 <= args.seconds <= 30:
        parser.error("--cells 1-20 and --seconds 1-30 keep a run bounded")
    return args


def process_cpu(target: Target) -> tuple[float, float]:
    """CPU seconds so far of the serving process and of its live descendants (Proc.cpu_s counts
    both; the process's own share is split out)."""
    assert target.proc is not None
    own = cpu_seconds(target.proc.pid)
    return own, target.proc.cpu_s() - own


def main() -> None:
    args = parse_args()
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    if not names or any(n not in ("bare", "spendgate") for n in names):
        raise SystemExit("--targets: bare and/or spendgate")
    extra = dict(item.split("=", 1) for item in args.env)
    logs = Path(tempfile.mkdtemp(prefix="spendgate-drift-"))
    fake = start_fake(logs, 0.0, stream_chunks=args.stream_chunks)
    targets: list[Target] = []
    burner: subprocess.Popen[bytes] | None = None
    try:
        for name in names:
            if name == "bare":
                targets.append(start_bare(logs, fake))
            else:
                targets.append(start_spendgate(logs, fake, extra_env=extra or None))
        for target in targets:
            run_wrk(Load(target.url, target.key, args.mode, args.concurrency, 2, f"warm-{target.name}"))
        if args.burn:
            busy, period = (float(v) for v in args.burn.split("/"))
            length = len(targets) * args.cells * (args.seconds + 2) + 10
            burner = subprocess.Popen([sys.executable, "-c", BURNER, str(busy), str(period), str(length)])
        settings = " ".join(args.env) or "default settings"
        print(f"{args.mode} c={args.concurrency}, {args.cells} cells of {args.seconds} s a target, "
              f"interleaved; {settings}" + (f"; side burner {args.burn}" if args.burn else ""))
        for cell in range(args.cells):
            for target in targets:
                own0, kids0 = process_cpu(target)
                result = run_wrk(Load(target.url, target.key, args.mode, args.concurrency, args.seconds,
                                      f"drift-{target.name}-{cell}"))
                own1, kids1 = process_cpu(target)
                calls = result.get("completed") or 0
                if result.get("errors") or not calls:
                    print(f"  {target.name:10} cell {cell + 1}: errors {result.get('errors')} "
                          f"{result.get('first_error') or ''}")
                    continue
                own_us, kids_us = 1e6 * (own1 - own0) / calls, 1e6 * (kids1 - kids0) / calls
                print(
                    f"  {target.name:10} cell {cell + 1}: {result['rps']:8.0f} req/s  "
                    f"p50 {result['p50_ms']:6.3f}  p90 {result['p90_ms']:6.3f}  p99 {result['p99_ms']:6.3f}  "
                    f"max {result['max_ms']:6.1f} ms  CPU a call: process {own_us:4.0f} us, "
                    f"children {kids_us:3.0f} us"
                )
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
        for target in targets:
            target.stop()
        fake.stop()


if __name__ == "__main__":
    main()
