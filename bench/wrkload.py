"""One bounded load run with wrk (C; never the bottleneck at these rates) and bench/wrk.lua.

wrk runs for a fixed time at a fixed number of keep-alive connections, one request in flight
on each. The Lua script sets the body, the key and a unique `x-client-request-id` per call,
checks every answer (HTTP 200 and a complete body) and prints one JSON line that this module
turns into the figures bench/run.py records.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LUA = Path(__file__).resolve().parent / "wrk.lua"
MARK = "BENCH_JSON "
REQUEST_TIMEOUT_S = 10


class WrkMissing(RuntimeError):
    """wrk is not installed."""


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissing(
            "bench/run.py drives load with wrk, which is not on PATH: install it "
            "(Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk)."
        )
    return found


@dataclass(frozen=True, slots=True)
class Load:
    url: str  # the target's base URL, without /v1
    key: str
    mode: str  # json | stream
    concurrency: int
    seconds: int  # wrk runs for whole seconds
    id_prefix: str  # x-client-request-id = <id_prefix>-<thread>-<n>
    threads: int = 1
    path: str = "/v1/messages"  # appended to url (bench/cloud_bench.py: the Bedrock paths)
    max_tokens: int = 64  # each call's max_tokens: the fake answers at most this many tokens


def run_wrk(load: Load) -> dict[str, Any]:
    """Run wrk once; figures in ms and calls/s, plus the CPU seconds wrk itself used."""
    threads = max(1, min(load.threads, load.concurrency))  # wrk needs connections >= threads
    argv = [
        wrk_path(), f"-t{threads}", f"-c{load.concurrency}", f"-d{load.seconds}s",
        f"--timeout={REQUEST_TIMEOUT_S}s", "-s", str(LUA), load.url.rstrip("/") + load.path,
    ]
    env = {
        **os.environ, "BENCH_KEY": load.key, "BENCH_MODE": load.mode, "BENCH_ID_PREFIX": load.id_prefix,
        "BENCH_MAX_TOKENS": str(load.max_tokens),
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False,
            timeout=load.seconds + 2 * REQUEST_TIMEOUT_S + 10,
        )
    except subprocess.TimeoutExpired:
        return {"errors": 1, "first_error": "wrk did not finish in time"}
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        return {"errors": 1, "first_error": (proc.stderr or proc.stdout).strip()[-500:] or "wrk failed"}
    raw = json.loads(lines[-1][len(MARK):])
    seconds = raw["duration_us"] / 1e6
    errors = int(raw["bad"]) + int(raw["socket_errors"]) + int(raw["timeouts"])
    return {
        "threads": threads,
        # wrk calls request() once on its first thread to check the script before the run:
        # that id is never sent.
        "sent": max(0, int(raw["sent"]) - 1),
        "completed": int(raw["completed"]),
        "ok": int(raw["good"]),
        "errors": errors,
        "elapsed_s": round(seconds, 4),
        "rps": round(int(raw["good"]) / seconds, 1) if seconds > 0 else 0.0,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "mean_ms": round(raw["mean_us"] / 1000, 3),
        "max_ms": raw["max_us"] / 1000,
        "first_error": raw["first_error"] or None,
        "loadgen_cpu_s": round(cpu_s, 3),
    }
