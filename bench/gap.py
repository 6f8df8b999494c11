"""Where Spendgate's gap to the bare proxy goes: its surroundings, its own path, landing its rows.

    python bench/gap.py [--rounds 4] [--modes json,stream] [--concurrency 50] [--seconds 5]

Four targets on one zero-latency fake upstream, in interleaved rounds of wrk cells (a 1 s warm-up,
then `--seconds`), as bench/run.py drives them:

- bare: bench/bare_proxy.py, the limit;
- shell: `spendgate serve` with the bare proxy's relay in place of Spendgate's metered path
  (bench/shell_proxy.py): Spendgate's server, process and ingest child, without its path;
- paused: Spendgate with its ledger ingest child stopped (SIGSTOP) for the cell: its path without
  rows being landed beside it. The child is let go after the cell, and the next cell starts once
  the ledger holds every call sent so far, so no cell pays for another's rows;
- spendgate: the same Spendgate process, as served.

Per cell: req/s, its share of bare's in the same round, and CPU a call of the serving process's
event-loop thread and of its children (the ingest child) from /proc. Per mode at the end: the
median share of each target, and the gap in wall time a call (1 / req/s, medians of the rounds)
split three ways: surroundings (shell - bare), path (paused - shell) and landing (spendgate -
paused). Ends with the ledger check: a row for every call sent to Spendgate.

The pause is a measurement, not a setting: the rows of a paused cell are landed after it, so over
a long run Spendgate pays for them anyway. What the `landing` figure says is how much the ingest
child's work beside the event loop costs the loop on this machine (two CPUs shared with the fake
upstream and wrk). Everything talks to 127.0.0.1 only, and every load run is bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import cpu_seconds, descendants
from targets import BENCH, Target, start_bare, start_fake, start_spendgate
from wrkload import Load, run_wrk

NAMES = ("bare", "shell", "paused", "spendgate")
RESULTS = BENCH / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="Interleaved rounds of the four targets.")
    parser.add_argument("--modes", default="json,stream", help="json and/or stream")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=5, help="wrk seconds a cell (after 1 s of warm-up).")
    args = parser.parse_args()
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or any(m not in ("json", "stream") for m in args.modes):
        parser.error("--modes: json and/or stream")
    if not 1 <= args.rounds <= 10 or not 1 <= args.seconds <= 30:
        parser.error("--rounds 1-10 and --seconds 1-30 keep a run bounded")
    return args


@contextlib.contextmanager
def paused(pids: list[int]) -> Iterator[None]:
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def ledger_count(target: Target) -> int | None:
    assert target.workdir is not None
    try:
        uri = f"file:{target.workdir / 'spendgate.db'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
            return int(conn.execute("SELECT count(*) FROM ledger").fetchone()[0])
    except sqlite3.Error:
        return None


def wait_landed(target: Target, sent: int, wait_s: float = 60.0) -> int | None:
    """Wait until the ledger holds `sent` rows (at most `wait_s`); the count last read."""
    deadline = time.monotonic() + wait_s
    while True:
        count = ledger_count(target)
        if (count is not None and count >= sent) or time.monotonic() > deadline:
            return count
        time.sleep(0.2)


def cell(target: Target, mode: str, args: argparse.Namespace, tag: str, pause: bool) -> dict[str, Any]:
    """One wrk cell: warm-up, then the measured run, with the CPU of the loop and the children."""
    assert target.proc is not None
    pid = target.proc.pid
    children = descendants(pid)
    with paused(children) if pause else contextlib.nullcontext():
        warm = run_wrk(Load(target.url, target.key, mode, args.concurrency, 1, f"{tag}-warm"))
        loop0, kids0 = cpu_seconds(pid, thread=pid), sum(map(cpu_seconds, children))
        result = run_wrk(Load(target.url, target.key, mode, args.concurrency, args.seconds, tag))
        loop1, kids1 = cpu_seconds(pid, thread=pid), sum(map(cpu_seconds, children))
    calls = result.get("completed") or 0
    elapsed = result.get("elapsed_s") or 0.0
    return {
        **result,
        "sent_with_warmup": int(warm.get("sent") or 0) + int(result.get("sent") or 0),
        "loop_core_pct": 100 * (loop1 - loop0) / elapsed if elapsed else None,
        "loop_us": 1e6 * (loop1 - loop0) / calls if calls else None,
        "children_us": 1e6 * (kids1 - kids0) / calls if calls else None,
    }


def line(result: dict[str, Any], share: float) -> str:
    return (
        f"{result.get('rps', 0):8.0f} req/s {share:6.1f}% of bare  "
        f"loop {result['loop_core_pct'] or 0:3.0f}% of a core, {result['loop_us'] or 0:6.1f} us a call  "
        f"children {result['children_us'] or 0:5.1f} us a call  errors {result.get('errors')}"
    )


def summary(mode: str, rounds: list[dict[str, dict[str, Any]]]) -> list[str]:
    usable = [r for r in rounds if all(r[n].get("rps") and not r[n].get("errors") for n in NAMES)]
    if not usable:
        return [f"{mode}: no round without errors"]
    share = {n: statistics.median(100 * r[n]["rps"] / r["bare"]["rps"] for r in usable) for n in NAMES[1:]}
    wall = {n: statistics.median(1e6 / r[n]["rps"] for r in usable) for n in NAMES}
    split = {
        "surroundings": statistics.median(1e6 / r["shell"]["rps"] - 1e6 / r["bare"]["rps"] for r in usable),
        "path": statistics.median(1e6 / r["paused"]["rps"] - 1e6 / r["shell"]["rps"] for r in usable),
        "landing": statistics.median(1e6 / r["spendgate"]["rps"] - 1e6 / r["paused"]["rps"] for r in usable),
    }
    shares = ", ".join(f"{n} {share[n]:.1f}%" for n in NAMES[1:])
    return [
        f"{mode}: median share of bare over {len(usable)} round(s): {shares}",
        "  wall time a call (medians): " + ", ".join(f"{n} {wall[n]:.1f} us" for n in NAMES),
        f"  Spendgate's gap split: surroundings {split['surroundings']:+.1f} us, "
        f"path {split['path']:+.1f} us, landing rows {split['landing']:+.1f} us a call",
    ]


def main() -> None:
    args = parse_args()
    logs = Path(tempfile.mkdtemp(prefix="spendgate-gap-"))
    fake = start_fake(logs, 0.0)
    started: list[Target] = []
    try:
        bare = start_bare(logs, fake)
        started.append(bare)
        shell = start_spendgate(logs, fake, "shell", entry=(str(BENCH / "shell_proxy.py"),))
        started.append(shell)
        spendgate = start_spendgate(logs, fake)
        started.append(spendgate)
        targets = {"bare": bare, "shell": shell, "paused": spendgate, "spendgate": spendgate}
        sent = 0
        for target in started:
            warm = run_wrk(Load(target.url, target.key, "json", args.concurrency, 2, f"warm-{target.name}"))
            if target is spendgate:
                sent += int(warm.get("sent") or 0)
        print(f"c={args.concurrency}, {args.rounds} round(s) of {', '.join(NAMES)}; "
              f"wrk {args.seconds} s a cell after 1 s of warm-up; {os.cpu_count()} CPUs")
        by_mode: dict[str, list[dict[str, dict[str, Any]]]] = {m: [] for m in args.modes}
        for number in range(1, args.rounds + 1):
            for mode in args.modes:
                got: dict[str, dict[str, Any]] = {}
                for name in NAMES:
                    target = targets[name]
                    tag = f"gap-{name}-{mode}-{number}"
                    result = got[name] = cell(target, mode, args, tag, pause=name == "paused")
                    if target is spendgate:
                        sent += result["sent_with_warmup"]
                        if name == "paused":  # its rows landed before the next cell
                            wait_landed(spendgate, sent)
                    share = 100 * result["rps"] / got["bare"]["rps"] if got["bare"].get("rps") else 0.0
                    print(f"  r{number} {mode:6} {name:9} {line(result, share)}", flush=True)
                by_mode[mode].append(got)
        print()
        for mode, rounds in by_mode.items():
            print("\n".join(summary(mode, rounds)))
        count = wait_landed(spendgate, sent)
        print(f"spendgate ledger: {count} rows for {sent} calls sent to it (paused and spendgate cells)"
              + ("" if count == sent else "  ** MISMATCH **"))
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / "gap.json"
        out.write_text(json.dumps({"args": {k: v for k, v in vars(args).items()}, "rounds": by_mode,
                                   "ledger_rows": count, "sent": sent}, indent=1, default=str))
        print(f"results: {out}")
    finally:
        for target in started:
            target.stop()
        fake.stop()


if __name__ == "__main__":
    main()
