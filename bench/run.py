"""The benchmark, in one command: direct vs bare proxy vs Spendgate (vs LiteLLM with --litellm).

    python bench/run.py [--litellm] [--requests N] [--concurrency 1,10,50] [--modes json,stream]
                        [--latency-ms 0]

Starts Spendgate's fake upstream, then each target in turn as its own process on a free
loopback port; runs bench/loadgen.py (a separate process) against it for every mode x
concurrency; records the target's peak RSS; prints the table and the issue's targets and
writes everything to bench/results/latest.json. Everything talks to 127.0.0.1 only, and
every load run is bounded in calls and in seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import StartError
from report import derive, evaluate, print_tables
from rich.console import Console
from targets import BENCH, Target, direct, start_bare, start_fake, start_litellm, start_spendgate

RESULTS = BENCH / "results"
DEFAULT_REQUESTS_C1 = 500
DEFAULT_REQUESTS = 2000


def csv_ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive integers, e.g. 1,10,50")
    return values


def csv_modes(text: str) -> list[str]:
    modes = [v.strip() for v in text.split(",") if v.strip()]
    if not modes or any(m not in ("json", "stream") for m in modes):
        raise argparse.ArgumentTypeError("modes are json and/or stream")
    return modes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--litellm", action="store_true", help="Also measure the LiteLLM proxy.")
    parser.add_argument("--requests", type=int, default=None,
                        help=f"Measured calls per cell (default {DEFAULT_REQUESTS_C1} at c=1, "
                             f"{DEFAULT_REQUESTS} otherwise).")
    parser.add_argument("--concurrency", type=csv_ints, default=[1, 10, 50], help="e.g. 1,10,50")
    parser.add_argument("--modes", type=csv_modes, default=["json", "stream"], help="json,stream")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="Fake upstream delay before headers.")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="Time cap of one cell's load run.")
    parser.add_argument("--targets", default="direct,bare,spendgate",
                        help="Subset to run (litellm is added by --litellm).")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args()
    if args.requests is not None and args.requests < 1:
        parser.error("--requests must be positive")
    return args


def requests_for(args: argparse.Namespace, concurrency: int) -> int:
    if args.requests is not None:
        return int(args.requests)
    return DEFAULT_REQUESTS_C1 if concurrency == 1 else DEFAULT_REQUESTS


def run_load(args: argparse.Namespace, target: Target, mode: str, concurrency: int) -> dict[str, Any]:
    argv = [
        sys.executable, str(BENCH / "loadgen.py"), "--url", target.url, "--key", target.key,
        "--requests", str(requests_for(args, concurrency)), "--concurrency", str(concurrency),
        "--mode", mode, "--max-seconds", str(args.max_seconds),
    ]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=args.max_seconds + 60, stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"errors": requests_for(args, concurrency), "first_error": "loadgen did not finish in time"}
    if proc.returncode != 0 or not proc.stdout.strip():
        return {"errors": requests_for(args, concurrency), "first_error": proc.stderr.strip()[-500:]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def measure(
    args: argparse.Namespace,
    console: Console,
    start: Callable[[], Target],
    name: str,
    cells: list[dict[str, Any]],
) -> dict[str, Any]:
    """Start one target, run every mode x concurrency against it, stop it."""
    console.print(f"[bold]{name}[/bold]: starting ...")
    try:
        target = start()
    except (StartError, RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        console.print(f"[red]{name} could not be started here, so it is left out:[/red] {exc}")
        return {"name": name, "status": "not started", "reason": str(exc)}
    info: dict[str, Any] = {"name": name, "status": "measured", "url": target.url,
                            "startup_s": round(target.startup_s or 0, 2), "notes": target.notes}
    try:
        for mode in args.modes:
            for concurrency in args.concurrency:
                result = run_load(args, target, mode, concurrency)
                rss = target.proc.peak_rss_mb() if target.proc else None
                cell = {"target": name, "mode": mode, "concurrency": concurrency, **result}
                cell["peak_rss_mb"] = rss
                cells.append(cell)
                first_error = f"  ({cell['first_error']})" if cell.get("first_error") else ""
                console.print(
                    f"  {mode:6} c={concurrency:<3} {cell.get('rps', 0):>8.0f} req/s  "
                    f"p50 {cell.get('p50_ms') or 0:7.2f} ms  p99 {cell.get('p99_ms') or 0:7.2f} ms  "
                    f"errors {cell.get('errors', 0)}{first_error}"
                )
                if target.proc is not None and target.proc.popen.poll() is not None:
                    raise StartError(f"{name} exited during the run:\n{target.proc.log_tail()}")
    except StartError as exc:
        console.print(f"[red]{exc}[/red]")
        info["status"] = "crashed"
    finally:
        target.stop()
    return info


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=BENCH, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "platform": platform.platform(), "spendgate_commit": commit}


def main() -> None:
    args = parse_args()
    console = Console()
    if not console.is_terminal:  # piped or redirected: do not squeeze the table into 80 columns
        console = Console(width=150)
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    if args.litellm and "litellm" not in names:
        names.append("litellm")
    started = time.monotonic()
    logs = RESULTS / "logs"
    cells: list[dict[str, Any]] = []
    fake = start_fake(logs, args.latency_ms)
    console.print(f"fake upstream at {fake.url} (latency {args.latency_ms:g} ms)")
    starters: dict[str, Callable[[], Target]] = {
        "direct": lambda: direct(fake),
        "bare": lambda: start_bare(logs, fake),
        "spendgate": lambda: start_spendgate(logs, fake),
        "litellm": lambda: start_litellm(logs, fake),
    }
    runs = []
    try:
        for name in names:
            if name not in starters:
                console.print(f"[yellow]unknown target {name!r} skipped[/yellow]")
                continue
            runs.append(measure(args, console, starters[name], name, cells))
    finally:
        fake.stop()
    derive(cells)
    goals = evaluate(cells, args.modes, args.concurrency)
    command = "python bench/run.py " + shlex.join(sys.argv[1:])
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    console.print()
    print_tables(console, cells, goals, f"{command.strip()}  ({when}, {os.cpu_count()} cores)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": command.strip(), "date": when, "duration_s": round(time.monotonic() - started, 1),
        "settings": {"requests": args.requests, "concurrency": args.concurrency, "modes": args.modes,
                     "latency_ms": args.latency_ms, "max_seconds": args.max_seconds},
        "machine": machine(), "targets": runs, "cells": cells, "goals": goals,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"results: {args.output}  ({report['duration_s']:.0f} s)")


if __name__ == "__main__":
    main()
