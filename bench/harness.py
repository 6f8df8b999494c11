"""Process plumbing for bench/run.py: free loopback ports, start/ready/stop, peak RSS."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"


class StartError(RuntimeError):
    """A target did not come up; the message says why (and where its log is)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Proc:
    """A child process in its own session (so stopping it also stops anything it forked)."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        self.popen = subprocess.Popen(
            list(argv), env=dict(env), stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def wait_ready(self, url: str, timeout_s: float) -> float:
        """Poll `url` until it answers 2xx; return the seconds it took. Stops the process on failure."""
        try:
            return self._wait_ready(url, timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, url: str, timeout_s: float) -> float:
        started = time.monotonic()
        while True:
            if self.popen.poll() is not None:
                raise StartError(
                    f"{self.name} exited with code {self.popen.returncode} before it was ready "
                    f"(log: {self.log_path}):\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if 200 <= resp.status < 300:
                        return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() - started > timeout_s:
                raise StartError(
                    f"{self.name} was not ready at {url} after {timeout_s:.0f}s "
                    f"(log: {self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def peak_rss_mb(self) -> float | None:
        """VmHWM (peak resident set) of the process plus its descendants, in MB."""
        total_kb = 0
        found = False
        for pid in [self.pid, *descendants(self.pid)]:
            kb = vm_hwm_kb(pid)
            if kb is not None:
                total_kb += kb
                found = True
        return round(total_kb / 1024, 1) if found else None

    def stop(self, grace_s: float = 10.0) -> None:
        if self._log.closed:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # Anything it forked that outlived it is still in its process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()


    def cpu_s(self) -> float:
        """CPU seconds (user + system, all threads) used so far by the process and its descendants."""
        return sum(cpu_seconds(pid) for pid in [self.pid, *descendants(self.pid)])


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU seconds a process has used, all its threads; with `thread`, that thread's alone."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        with open(path) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # fields[11], fields[12]: utime, stime (the 14th and 15th fields of the whole line)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def vm_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (via /proc/PID/task/*/children)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.append(child)
                    stack.append(child)
    return found


def run_json(argv: Sequence[str], timeout_s: float, env: Mapping[str, str] | None = None) -> str:
    """Run a short command and return its stdout; raise with its stderr if it fails."""
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout_s, env=dict(env) if env else None,
        stdin=subprocess.DEVNULL, check=False,
    )
    if proc.returncode != 0:
        command = " ".join(argv[:4])
        raise RuntimeError(f"{command} ... failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return proc.stdout


def callgrind_round(pid: int, name: str, work: Callable[[], None]) -> None:
    """Count the instructions of `work` in a process running under `valgrind --tool=callgrind
    --instr-atstart=no`: counting on for `work` alone, then a dump triggered as `name`."""

    def control(*args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=120)

    control("--zero")
    control("--instr=on")
    work()
    control("--instr=off")
    control(f"--dump={name}")


def callgrind_totals(dumps: Iterable[Path]) -> list[tuple[str, int]]:
    """(name, instructions) of each dump `callgrind_round` triggered, in the dumps' order."""
    found = []
    for dump in dumps:
        text = dump.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: dump (\S+)$", text, re.M)
        totals = re.search(r"^totals: (\d+)", text, re.M)
        if trigger and totals:
            found.append((trigger.group(1), int(totals.group(1))))
    return found
