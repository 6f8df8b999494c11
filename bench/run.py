"""The benchmark, in one command: direct vs bare proxy vs Spendgate (vs LiteLLM with --litellm).

    python bench/run.py [--litellm] [--requests N] [--concurrency 1,10,50] [--modes json,stream]
                        [--latency-ms 0] [--rounds 3]

Starts Spendgate's fake upstream and every target, each its own process on a free loopback
port; then, for every mode x concurrency, runs bench/loadgen.py (a separate process) against
each target in turn, so that whatever else the machine is doing hits all targets alike.
Records each target's peak RSS and CPU per call, prints the table and the issue's targets,
and writes everything to bench/results/latest.json. Everything talks to 127.0.0.1 only, and
every load run is bounded in calls and in seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import StartError, busy_cpu_seconds
from report import aggregate, derive, evaluate, print_tables
from rich.console import Console
from targets import (
    BENCH,
    Target,
    direct,
    ledger_rows,
    start_bare,
    start_fake,
    start_litellm,
    start_spendgate,
)

RESULTS = BENCH / "results"
DEFAULT_ROUNDS = 3  # this machine is shared: medians of three interleaved rounds resist bursts of other work
DEFAULT_REQUESTS_C1 = 500
DEFAULT_REQUESTS = 2000
DEFAULT_LITELLM_REQUESTS = 300  # LiteLLM is ~40x slower here: fewer calls keep its cells to ~15 s
NOISY_OTHER_CPU_PCT = 10.0


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
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help="Repeat the whole grid; each figure is the median over rounds.")
    parser.add_argument("--litellm-requests", type=int, default=DEFAULT_LITELLM_REQUESTS,
                        help="At most this many measured calls per LiteLLM cell.")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="Time cap of one cell's load run.")
    parser.add_argument("--targets", default="direct,bare,spendgate",
                        help="Subset to run (litellm is added by --litellm).")
    parser.add_argument("--budgets", type=int, default=0, metavar="N",
                        help="Also measure Spendgate with N (1-5) budgets enforced on every call.")
    parser.add_argument("--redis", default=None, metavar="URL",
                        help="With --budgets: also measure budgets on Redis counters at this URL.")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args()
    if (args.requests is not None and args.requests < 1) or min(args.rounds, args.litellm_requests) < 1:
        parser.error("--requests, --litellm-requests and --rounds must be positive")
    return args


def requests_for(args: argparse.Namespace, target: str, concurrency: int) -> int:
    if args.requests is not None:
        count = int(args.requests)
    else:
        count = DEFAULT_REQUESTS_C1 if concurrency == 1 else DEFAULT_REQUESTS
    return min(count, args.litellm_requests) if target == "litellm" else count


def run_load(args: argparse.Namespace, target: Target, mode: str, concurrency: int) -> dict[str, Any]:
    count = requests_for(args, target.name, concurrency)
    argv = [
        sys.executable, str(BENCH / "loadgen.py"), "--url", target.url, "--key", target.key,
        "--requests", str(count), "--concurrency", str(concurrency), "--mode", mode,
        "--max-seconds", str(args.max_seconds),
    ]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=args.max_seconds + 60, stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"errors": count, "first_error": "loadgen did not finish in time"}
    if proc.returncode != 0 or not proc.stdout.strip():
        return {"errors": count, "first_error": proc.stderr.strip()[-500:] or "loadgen failed"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def measure_cell(
    args: argparse.Namespace, target: Target, everyone: list[Target], mode: str, concurrency: int
) -> dict[str, Any]:
    """One load run, with the target's CPU per call and how busy the rest of the machine was."""
    ours = [t for t in everyone if t.proc is not None]
    cpu_before = {t.name: t.proc.cpu_s() for t in ours if t.proc}
    loadgen_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before, wall_before = busy_cpu_seconds(), time.monotonic()
    result = run_load(args, target, mode, concurrency)
    busy, wall = busy_cpu_seconds() - busy_before, time.monotonic() - wall_before
    loadgen_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = {t.name: t.proc.cpu_s() - cpu_before[t.name] for t in ours if t.proc}
    loadgen_cpu = (loadgen_after.ru_utime + loadgen_after.ru_stime) - (
        loadgen_before.ru_utime + loadgen_before.ru_stime
    )
    calls = int(result.get("sent", 0)) + int(result.get("warmup", 0))
    other = max(0.0, busy - sum(used.values()) - loadgen_cpu)
    cell: dict[str, Any] = {"target": target.name, "mode": mode, "concurrency": concurrency, **result}
    cell["cpu_ms_per_call"] = round(1000 * used[target.name] / calls, 3) if target.proc and calls else None
    cell["other_cpu_pct"] = round(100 * other / (wall * (os.cpu_count() or 1)), 1) if wall > 0 else None
    cell["peak_rss_mb"] = target.proc.peak_rss_mb() if target.proc else None
    return cell


def start_all(
    console: Console, starters: dict[str, Callable[[], Target]], names: list[str], running: list[Target]
) -> list[dict[str, Any]]:
    """Start each named target, appending it to `running` at once (so the caller can always stop it)."""
    info: list[dict[str, Any]] = []
    for name in names:
        if name not in starters:
            console.print(f"[yellow]unknown target {name!r} skipped[/yellow]")
            continue
        console.print(f"[bold]{name}[/bold]: starting ...")
        try:
            target = starters[name]()
        except (StartError, RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            console.print(f"[red]{name} could not be started here, so it is left out:[/red]")
            console.print(str(exc), markup=False, highlight=False)
            info.append({"name": name, "status": "not started", "reason": str(exc)})
            continue
        console.print(f"  ready at {target.url} after {target.startup_s or 0:.1f}s")
        running.append(target)
        info.append({"name": name, "status": "measured", "url": target.url,
                     "startup_s": round(target.startup_s or 0, 2), "notes": target.notes})
    return info


def run_grid(args: argparse.Namespace, console: Console, running: list[Target], everyone: list[Target],
             info: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every round x mode x concurrency, each target in turn; `everyone` are our processes."""
    samples: list[dict[str, Any]] = []
    alive = list(running)
    for round_no in range(1, args.rounds + 1):
        for mode in args.modes:
            for concurrency in args.concurrency:
                for target in list(alive):
                    cell = measure_cell(args, target, everyone, mode, concurrency)
                    cell["round"] = round_no
                    samples.append(cell)
                    console.print(progress_line(cell), markup=False, highlight=False)
                    if target.proc is not None and target.proc.popen.poll() is not None:
                        console.print(f"[red]{target.name} exited during the run:[/red]")
                        console.print(target.proc.log_tail(), markup=False)
                        alive.remove(target)
                        for entry in info:
                            if entry["name"] == target.name:
                                entry["status"] = "crashed"
    return samples


def progress_line(cell: dict[str, Any]) -> str:
    first_error = f"  ({cell['first_error']})" if cell.get("first_error") else ""
    return (
        f"  r{cell['round']} {cell['mode']:6} c={cell['concurrency']:<3} {cell['target']:9} "
        f"{cell.get('rps', 0):>7.0f} req/s  p50 {cell.get('p50_ms') or 0:7.2f} ms  "
        f"p99 {cell.get('p99_ms') or 0:7.2f} ms  errors {cell.get('errors', 0)}  "
        f"other CPU {cell.get('other_cpu_pct') or 0:.0f}%{first_error}"
    )


def check_ledger(
    console: Console, running: list[Target], samples: list[dict[str, Any]], info: list[dict[str, Any]]
) -> None:
    """Spendgate must have metered every call it answered: one ledger row per call."""
    for target in running:
        if target.workdir is None:  # only Spendgate targets keep a ledger
            continue
        mine = [s for s in samples if s["target"] == target.name]
        calls = sum(int(s.get("sent", 0)) + int(s.get("warmup", 0)) for s in mine)
        rows = ledger_rows(target, calls)
        console.print(f"{target.name} ledger: {rows} rows for {calls} calls sent to it", highlight=False)
        for entry in info:
            if entry["name"] == target.name:
                entry.update(ledger_rows=rows, calls=calls)


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def git(*argv: str) -> str:
        try:
            out = subprocess.run(["git", *argv], capture_output=True, text=True, cwd=BENCH, check=False)
        except OSError:
            return ""
        return out.stdout.strip()

    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "platform": platform.platform(), "spendgate_commit": git("rev-parse", "--short", "HEAD"),
            "spendgate_tree_dirty": bool(git("status", "--porcelain", "--", "../spendgate"))}


def main() -> None:
    args = parse_args()
    # A plain `kill` must still stop every process this run started (they are in their own sessions).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    console = Console()
    if not console.is_terminal:  # piped or redirected: do not squeeze the table into 80 columns
        console = Console(width=150)
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    if args.litellm and "litellm" not in names:
        names.append("litellm")
    if args.budgets:
        names.append("sg+budgets")
        if args.redis:
            names.append("sg+redis")
    started = time.monotonic()
    logs = RESULTS / "logs"
    fake = start_fake(logs, args.latency_ms)
    console.print(f"fake upstream at {fake.url} (latency {args.latency_ms:g} ms)")
    starters: dict[str, Callable[[], Target]] = {
        "direct": lambda: direct(fake),
        "bare": lambda: start_bare(logs, fake),
        "spendgate": lambda: start_spendgate(logs, fake),
        "litellm": lambda: start_litellm(logs, fake),
        "sg+budgets": lambda: start_spendgate(logs, fake, "sg+budgets", args.budgets),
        "sg+redis": lambda: start_spendgate(logs, fake, "sg+redis", args.budgets, args.redis),
    }
    running: list[Target] = []
    try:
        info = start_all(console, starters, names, running)
        samples = run_grid(args, console, running, [fake, *running], info) if running else []
        check_ledger(console, running, samples, info)
    finally:
        for target in running:
            target.stop()
        fake.stop()
    cells = aggregate(samples)
    derive(cells)
    goals = evaluate(cells, args.modes, args.concurrency)
    command = ("python bench/run.py " + shlex.join(sys.argv[1:])).strip()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    console.print()
    print_tables(console, cells, goals, f"{command}  ({when}, {os.cpu_count()} cores)")
    noisy = [c for c in cells if (c.get("other_cpu_pct") or 0) > NOISY_OTHER_CPU_PCT]
    if noisy:
        console.print(f"[yellow]{len(noisy)} cell(s) ran while other processes used more than "
                      f"{NOISY_OTHER_CPU_PCT:g}% of the CPUs ('other CPU %'): treat them with care, "
                      "or run again on a quiet machine.[/yellow]")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": command, "date": when, "duration_s": round(time.monotonic() - started, 1),
        "settings": {"requests": args.requests, "concurrency": args.concurrency, "modes": args.modes,
                     "latency_ms": args.latency_ms, "rounds": args.rounds, "max_seconds": args.max_seconds},
        "machine": machine(), "targets": info, "cells": cells, "goals": goals, "samples": samples,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"results: {args.output}  ({report['duration_s']:.0f} s)")


if __name__ == "__main__":
    main()
