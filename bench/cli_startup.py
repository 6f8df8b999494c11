"""CLI start-up: how long `spendgate --help` and `spendgate spend` take, each a new process.

    python bench/cli_startup.py [--runs 15] [--importtime]

Each command runs `--runs` times against a fresh SQLite database in a temporary folder (created and
migrated by one untimed run first), as a user runs it: the `spendgate` script next to this Python.
Prints the median and minimum wall time, and the CPU time (user + system) of the same runs, which
a busy machine inflates less than the wall time (on a quiet one the two are about equal).
Target (issue #15): 0.3 s cold for both.
With --importtime, also the modules whose import took longest for each command (python -X importtime).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = (["--help"], ["spend"])


def spendgate() -> str:
    return str(Path(sys.executable).with_name("spendgate"))


def timed(args: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([spendgate(), *args], env=env, cwd=cwd, capture_output=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def slowest_imports(args: list[str], env: dict[str, str], cwd: str, top: int = 12) -> list[tuple[int, str]]:
    code = "import sys; from spendgate.cli import main; sys.argv = ['spendgate', *sys.argv[1:]]; main()"
    command = [sys.executable, "-X", "importtime", "-c", code, *args]
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    rows = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
            if cumulative.isdigit():
                rows.append((int(cumulative), name))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--importtime", action="store_true", help="also list the slowest imports")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "SPENDGATE_DATABASE_URL": f"sqlite:///{folder}/bench.db"}
        subprocess.run([spendgate(), "migrate"], env=env, cwd=folder, capture_output=True, check=True)
        header = f"{'median s':>9} {'min s':>7} {'CPU median s':>13} {'CPU min s':>10}"
        print(f"{'command':<22} {header}   ({options.runs} runs)")
        for args in COMMANDS:
            runs = [timed(args, env, folder) for _ in range(options.runs)]
            walls, cpus = [w for w, _ in runs], [c for _, c in runs]
            label = "spendgate " + " ".join(args)
            print(
                f"{label:<22} {statistics.median(walls):>9.3f} {min(walls):>7.3f} "
                f"{statistics.median(cpus):>13.3f} {min(cpus):>10.3f}"
            )
        if options.importtime:
            for args in COMMANDS:
                print(f"\nslowest imports (cumulative ms) for spendgate {' '.join(args)}:")
                for micros, name in slowest_imports(args, env, folder):
                    print(f"  {micros / 1000:8.1f}  {name}")


if __name__ == "__main__":
    main()
