"""Where a target's CPU goes under wrk load: py-spy samples, summed by function and by file.

    python bench/profile.py [--target spendgate|bare] [--mode json|stream|bedrock-stream]
                            [--concurrency 50] [--seconds 10] [--rate 250] [--top 40]
                            [--output-tokens N]

Starts the fake upstream and the target (as bench/run.py does), warms it up, then records it
with py-spy (`pip install py-spy`; every thread, native frames off) while wrk drives load, and
prints: the share of samples per thread, the functions with the most samples of their own
("self"), and the files with the most samples anywhere on the stack ("total"). The collapsed
stacks are kept in bench/results/profile-<target>-<mode>.txt (for flamegraph.pl or speedscope).
`--mode bedrock-stream` drives Spendgate's Bedrock stream path (`invoke-with-response-stream`,
signed with a test identity, as bench/cloud_bench.py does; Spendgate only).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from cloud_bench import AWS, PATHS
from harness import CLOCK_TICKS
from targets import BENCH, Target, start_bare, start_fake, start_spendgate
from wrkload import Load, run_wrk

RESULTS = BENCH / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=("spendgate", "bare"), default="spendgate")
    parser.add_argument("--mode", choices=("json", "stream", "bedrock-stream"), default="json")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second (0: no py-spy, "
                        "CPU per thread only)")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--output-tokens", type=int, help="the fake's answer length (its default: 24)")
    parser.add_argument("--gil", action="store_true", help="Only samples that hold the GIL.")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="An extra variable for Spendgate (repeatable), e.g. "
                        "SPENDGATE_LEDGER_INGEST_PROCESS=true.")
    return parser.parse_args()


def thread_cpu(pid: int) -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds per thread, from /proc/PID/task (Python does not name OS
    threads: the main thread is the event loop, the others are named by their id)."""
    out: dict[str, tuple[float, float]] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = "main thread (event loop)" if task.name == str(pid) else f"thread {task.name}"
        out[name] = (int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS)
    return out


def summarise(stacks: Path, top: int) -> None:
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    files: Counter[str] = Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count
        own[frames[-1]] += count
        for name in {frame.partition(" (")[2].rstrip(")").rpartition(":")[0] for frame in frames[1:]}:
            files[name] += count
    if not total:
        print("no samples")
        return
    print(f"{total} samples")
    print("\nby thread:")
    for name, count in threads.most_common(10):
        print(f"  {100 * count / total:5.1f}%  {name}")
    print(f"\nself (top {top}):")
    for name, count in own.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {name}")
    print(f"\ntotal by file (top {top}):")
    for name, count in files.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {shorten(name)}")


def shorten(path: str) -> str:
    for marker in ("site-packages/", "/spendgate/", "/lib/python3"):
        if marker in path:
            rest = path.split(marker, 1)[1]
            return "spendgate/" + rest if marker == "/spendgate/" else rest
    return path


def main() -> None:
    args = parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if args.rate and not Path(spy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    logs = RESULTS / "logs"
    fake = start_fake(logs, 0.0, args.output_tokens)
    target: Target | None = None
    bedrock = args.mode == "bedrock-stream"
    if bedrock and args.target != "spendgate":
        raise SystemExit("--mode bedrock-stream profiles Spendgate only")
    path = PATHS["bedrock"][1] if bedrock else "/v1/messages"
    try:
        if args.target == "spendgate":
            cloud = {**AWS, "SPENDGATE_BEDROCK_BASE_URL": fake.url, "SPENDGATE_BEDROCK_REGION": "us-east-1"}
            extra = dict(item.split("=", 1) for item in args.env)
            target = start_spendgate(logs, fake, extra_env={**(cloud if bedrock else {}), **extra} or None)
        else:
            target = start_bare(logs, fake)
        assert target.proc is not None
        run_wrk(Load(target.url, target.key, args.mode, args.concurrency, 2, "profile-warm", path=path))
        out = RESULTS / f"profile-{args.target}-{args.mode}.txt"
        argv = [spy, "record", "--pid", str(target.proc.pid), "--duration", str(args.seconds),
                "--rate", str(args.rate), "--format", "raw", "--threads", "--output", str(out)]
        if args.gil:
            argv.append("--gil")
        recorder = threading.Thread(
            target=subprocess.run, args=(argv,), kwargs={"check": False, "capture_output": True}
        )
        before = thread_cpu(target.proc.pid)
        if args.rate:
            recorder.start()
        load = Load(target.url, target.key, args.mode, args.concurrency, args.seconds, "profile", path=path)
        result = run_wrk(load)
        after = thread_cpu(target.proc.pid)
        if args.rate:
            recorder.join()
        print(f"{args.target} {args.mode} c={args.concurrency}: {result.get('rps')} req/s, "
              f"errors {result.get('errors')}; stacks in {out}")
        calls = int(result.get("sent", 0)) or 1
        print("CPU per call by thread, from /proc (py-spy's own sampling included): total (user + system)")
        spent = {
            name: (user - before.get(name, (0.0, 0.0))[0], system - before.get(name, (0.0, 0.0))[1])
            for name, (user, system) in after.items()
        }
        for name, (user, system) in sorted(spent.items(), key=lambda item: -sum(item[1])):
            if user + system > 0:
                print(f"  {1e6 * (user + system) / calls:7.1f} us ({1e6 * user / calls:.1f} + "
                      f"{1e6 * system / calls:.1f})  {name}")
        if args.rate:
            summarise(out, args.top)
    finally:
        if target is not None:
            target.stop()
        fake.stop()


if __name__ == "__main__":
    main()
