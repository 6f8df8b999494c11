"""The benchmark: direct vs bare proxy vs Spendgate (vs LiteLLM with --litellm), load from wrk.

    python bench/run.py [--litellm] [--seconds 5] [--warmup 1] [--rounds 2] [--stat best|median]
                        [--concurrency 1,50] [--modes json,stream] [--latency-ms 0] [--workers N]

Starts Spendgate's fake upstream and every target, each its own process on a free loopback
port. Then, round after round, for every mode x concurrency it runs wrk against each target in
turn (a warm-up run, then the measured run), so that whatever else the machine does hits all
targets alike; the order of the targets rotates from round to round. Per cell it records the
target's CPU per call from /proc (the process and its children), the CPU shares of the target,
wrk, the fake and everything else, and the target's peak RSS. It prints the table (best or
median over the rounds, as stated in its title), the issue's targets and any warning about
cells the load generator or other work may have limited; checks that Spendgate's ledger holds
every call it was sent exactly once; and writes everything to bench/results/latest.json.
Everything talks to 127.0.0.1 only, and every load run is bounded in time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import StartError, busy_cpu_seconds
from report import aggregate, derive, evaluate, paired_lines, paired_shares, print_tables, warnings
from rich.console import Console
from targets import (
    BENCH,
    Target,
    direct,
    ledger_ids,
    start_bare,
    start_fake,
    start_litellm,
    start_spendgate,
)
from wrkload import Load, WrkMissing, run_wrk, wrk_path

RESULTS = BENCH / "results"


def csv_ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive integers, e.g. 1,50")
    return values


def csv_modes(text: str) -> list[str]:
    modes = [v.strip() for v in text.split(",") if v.strip()]
    if not modes or any(m not in ("json", "stream") for m in modes):
        raise argparse.ArgumentTypeError("modes are json and/or stream")
    return modes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--litellm", action="store_true", help="Also measure the LiteLLM proxy.")
    # wrk takes whole seconds
    parser.add_argument("--seconds", type=int, default=5, help="Measured seconds per cell.")
    parser.add_argument("--warmup", type=int, default=1, help="Unmeasured seconds first (0: none).")
    parser.add_argument("--rounds", type=int, default=2, help="Repeat the whole grid, interleaved.")
    parser.add_argument("--stat", choices=("best", "median"), default="best",
                        help="Per figure over the rounds: best (highest req/s, lowest latency and "
                             "CPU) or median.")
    parser.add_argument("--concurrency", type=csv_ints, default=[1, 50],
                        help="Connections (c=1: latency, c=50: throughput), e.g. 1,10,50.")
    parser.add_argument("--modes", type=csv_modes, default=["json", "stream"], help="json,stream")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="Fake upstream delay before headers.")
    parser.add_argument("--stream-chunks", choices=("whole", "event"), default="whole",
                        help="How the fake writes a stream: in one go (default), or a write per event "
                        "(which makes the fake the bottleneck of stream c=50 on two cores).")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (one is plenty here).")
    parser.add_argument("--targets", default="direct,bare,spendgate",
                        help="Subset to run (litellm is added by --litellm); also sg-ingest and "
                             "sg-thread: Spendgate with SPENDGATE_LEDGER_INGEST_PROCESS=true and =false "
                             "(the default, 'auto', picks true on a machine with a CPU to spare).")
    parser.add_argument("--baseline", type=Path, default=None, metavar="CHECKOUT",
                        help="Also measure the spendgate package of another checkout (target "
                             "sg-base), e.g. a worktree of the commit before a change.")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="Also measure `spendgate serve --workers N` (target sg-wN).")
    parser.add_argument("--budgets", type=int, default=0, metavar="N",
                        help="Also measure Spendgate with N (1-5) budgets enforced on every call.")
    parser.add_argument("--redis", default=None, metavar="URL",
                        help="With --budgets: also measure budgets on Redis counters at this URL.")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args()
    if args.seconds <= 0 or args.warmup < 0 or args.rounds < 1 or args.wrk_threads < 1:
        parser.error("--seconds and --rounds must be positive, --warmup at least 0")
    return args


def measure_cell(
    args: argparse.Namespace, target: Target, ours: list[Target], mode: str, concurrency: int, round_no: int
) -> dict[str, Any]:
    """A warm-up run, then the measured one with the CPU of every process of ours from /proc."""
    prefix = f"{target.name}-r{round_no}-{mode}-c{concurrency}"

    def load(seconds: int, suffix: str) -> Load:
        return Load(target.url, target.key, mode, concurrency, seconds, prefix + suffix, args.wrk_threads)

    warm = run_wrk(load(args.warmup, "-warm")) if args.warmup > 0 else {}
    cpu_before = {t.name: t.proc.cpu_s() for t in ours if t.proc}
    busy_before, wall_before = busy_cpu_seconds(), time.monotonic()
    result = run_wrk(load(args.seconds, ""))
    busy, wall = busy_cpu_seconds() - busy_before, time.monotonic() - wall_before
    used = {t.name: t.proc.cpu_s() - cpu_before[t.name] for t in ours if t.proc}
    loadgen = float(result.get("loadgen_cpu_s", 0.0))
    other = max(0.0, busy - sum(used.values()) - loadgen)
    cores = os.cpu_count() or 1
    sent = int(result.get("sent", 0))
    cell: dict[str, Any] = {"target": target.name, "mode": mode, "concurrency": concurrency, **result}
    cell["id_prefix"] = prefix
    cell["calls_sent"] = sent + int(warm.get("sent", 0))  # for the ledger check
    cell["warmup_errors"] = int(warm.get("errors", 0))
    cell["first_error"] = cell.get("first_error") or warm.get("first_error")
    mine = used.get(target.name)
    cell["cpu_ms_per_call"] = round(1000 * mine / sent, 3) if mine is not None and sent else None
    cell["target_core_pct"] = round(100 * mine / wall, 1) if mine is not None and wall > 0 else None
    cell["fake_core_pct"] = round(100 * used.get("fake", 0.0) / wall, 1) if wall > 0 else None
    cell["loadgen_core_pct"] = round(100 * loadgen / wall, 1) if wall > 0 else None
    cell["busy_pct"] = round(100 * busy / (wall * cores), 1) if wall > 0 else None
    cell["other_cpu_pct"] = round(100 * other / (wall * cores), 1) if wall > 0 else None
    cell["peak_rss_mb"] = target.proc.peak_rss_mb() if target.proc else None
    cell["processes"] = target.processes
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


def run_grid(args: argparse.Namespace, console: Console, running: list[Target], ours: list[Target],
             info: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every round x mode x concurrency, each target in turn (the order rotates per round)."""
    samples: list[dict[str, Any]] = []
    alive = list(running)
    for round_no in range(1, args.rounds + 1):
        for mode in args.modes:
            for concurrency in args.concurrency:
                shift = (round_no - 1) % max(len(alive), 1)
                for target in alive[shift:] + alive[:shift]:
                    cell = measure_cell(args, target, ours, mode, concurrency, round_no)
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
        f"  r{cell['round']} {cell['mode']:6} c={cell['concurrency']:<3} {cell['target']:10} "
        f"{cell.get('rps', 0):>7.0f} req/s  p50 {cell.get('p50_ms') or 0:6.2f} ms  "
        f"p99 {cell.get('p99_ms') or 0:6.2f} ms  CPU/call {cell.get('cpu_ms_per_call') or 0:.3f} ms  "
        f"target {cell.get('target_core_pct') or 0:.0f}%  wrk {cell.get('loadgen_core_pct') or 0:.0f}%  "
        f"fake {cell.get('fake_core_pct') or 0:.0f}%  other {cell.get('other_cpu_pct') or 0:.0f}%  "
        f"errors {cell.get('errors', 0)}{first_error}"
    )


def check_ledger(
    console: Console, running: list[Target], samples: list[dict[str, Any]], info: list[dict[str, Any]]
) -> None:
    """Spendgate must have metered every call wrk sent it exactly once (calls carry unique ids)."""
    for target in running:
        if target.workdir is None:  # only Spendgate targets keep a ledger
            continue
        mine = [s for s in samples if s["target"] == target.name]
        sent = sum(int(s.get("calls_sent", 0)) for s in mine)
        answered = sum(int(s.get("completed", 0)) for s in mine)
        ids = ledger_ids(target, sent)
        if ids is None:
            console.print(f"[red]{target.name} ledger: could not be read[/red]")
            continue
        distinct = len(set(ids))
        ok = len(ids) == sent == distinct
        colour = "green" if ok else "red"
        console.print(
            f"[{colour}]{target.name} ledger: {len(ids)} rows ({distinct} distinct call ids) for {sent} "
            f"calls sent to it ({answered} answered before wrk stopped){'' if ok else ': MISMATCH'}"
            f"[/{colour}]", highlight=False,
        )
        for entry in info:
            if entry["name"] == target.name:
                entry.update(ledger_rows=len(ids), ledger_distinct_ids=distinct, calls_sent=sent,
                             ledger_ok=ok)


def machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
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
            "platform": platform.platform(), "load_before": load_before,
            "spendgate_commit": git("rev-parse", "--short", "HEAD"),
            "spendgate_tree_dirty": bool(git("status", "--porcelain", "--", "../spendgate"))}


def main() -> None:
    args = parse_args()
    # A plain `kill` must still stop every process this run started (they are in their own sessions).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    console = Console()
    if not console.is_terminal:  # piped or redirected: do not squeeze the table into 80 columns
        console = Console(width=170)
    try:
        wrk_path()
    except WrkMissing as exc:
        console.print(f"[red]{exc}[/red]")
        raise SystemExit(2) from None
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    if args.litellm and "litellm" not in names:
        names.append("litellm")
    if args.baseline is not None:
        names.append("sg-base")
    if args.workers > 1:
        names.append(f"sg-w{args.workers}")
    if args.budgets:
        names.append("sg+budgets")
        if args.redis:
            names.append("sg+redis")
    load = os.getloadavg()
    console.print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
                  f"({os.cpu_count()} cores)")
    started = time.monotonic()
    logs = RESULTS / "logs"
    fake = start_fake(logs, args.latency_ms, stream_chunks=args.stream_chunks)
    console.print(
        f"fake upstream at {fake.url} (latency {args.latency_ms:g} ms, streams written "
        f"{'in one go' if args.stream_chunks == 'whole' else 'event by event'})"
    )
    starters: dict[str, Callable[[], Target]] = {
        "direct": lambda: direct(fake),
        "bare": lambda: start_bare(logs, fake),
        "spendgate": lambda: start_spendgate(logs, fake),
        "litellm": lambda: start_litellm(logs, fake),
        "sg-base": lambda: start_spendgate(logs, fake, "sg-base", source=args.baseline),
        # the ledger rows landed by a child process instead of the serving process's writer thread
        "sg-ingest": lambda: start_spendgate(
            logs, fake, "sg-ingest", extra_env={"SPENDGATE_LEDGER_INGEST_PROCESS": "true"}
        ),
        # ... and by a writer thread of the serving process
        "sg-thread": lambda: start_spendgate(
            logs, fake, "sg-thread", extra_env={"SPENDGATE_LEDGER_INGEST_PROCESS": "false"}
        ),
        f"sg-w{args.workers}": lambda: start_spendgate(logs, fake, f"sg-w{args.workers}",
                                                       workers=args.workers),
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
    cells = aggregate(samples, args.stat)
    derive(cells)
    goals = evaluate(cells, args.modes, args.concurrency)
    command = ("python bench/run.py " + shlex.join(sys.argv[1:])).strip()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    how = (f"{args.stat} of {args.rounds} interleaved round(s), wrk {args.seconds:g} s per cell after "
           f"{args.warmup:g} s warm-up")
    console.print()
    print_tables(console, cells, goals, f"{command}  ({when}, {os.cpu_count()} cores; {how})")
    paired = paired_shares(samples)
    for line in paired_lines(paired):
        console.print(line, highlight=False)
    # Other Spendgates of the run (`sg-base`, `sg-wN`), paired the same way, for a before/after.
    others = sorted({s["target"] for s in samples} - {"direct", "bare", "spendgate", "litellm"})
    for other in others:
        for line in paired_lines(paired_shares(samples, other), other):
            console.print(line, highlight=False)
    for line in warnings(cells):
        console.print(f"[yellow]{line}[/yellow]", highlight=False)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": command, "date": when, "duration_s": round(time.monotonic() - started, 1),
        "settings": {"seconds": args.seconds, "warmup": args.warmup, "concurrency": args.concurrency,
                     "modes": args.modes, "latency_ms": args.latency_ms, "rounds": args.rounds,
                     "stat": args.stat, "wrk_threads": args.wrk_threads,
                     "stream_chunks": args.stream_chunks},
        "machine": machine(load), "targets": info, "cells": cells, "goals": goals,
        "paired_pct_of_bare": paired, "samples": samples,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"results: {args.output}  ({report['duration_s']:.0f} s)")


if __name__ == "__main__":
    main()
