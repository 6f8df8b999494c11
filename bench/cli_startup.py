"""CLI start-up: how long `spendgate --help` and `spendgate spend` take, each a new process.

    python bench/cli_startup.py [--runs 15] [--importtime]

Each command runs `--runs` times against a fresh SQLite database in a temporary folder (created and
migrated by one untimed run first), as a user runs it: the `spendgate` script next to this Python.
Prints the median and minimum wall time, and the CPU time (user + system) of the same runs, which
a busy machine inflates less than the wall time (on a quiet one the two are about equal).

Two cases, because compiling Spendgate's own modules is a large part of a run that must do it:
- installed: every module's bytecode is cached, as after `pip install` (which compiles it) or any
  earlier run. What a user sees; the target (issue #15) is 0.3 s for both commands.
- from source: Spendgate's own modules are compiled on every run (the libraries' bytecode is
  cached), as in a checkout run with PYTHONDONTWRITEBYTECODE=1 (set on the machine these figures
  come from), so before 2026-11-29 this benchmark measured that case alone.
Both keep their bytecode in a temporary PYTHONPYCACHEPREFIX, so the checkout's own __pycache__
folders (present or not) change nothing.
With --importtime, also the modules whose import took longest for each command (python -X importtime).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = (["--help"], ["spend"])


def spendgate() -> str:
    return str(Path(sys.executable).with_name("spendgate"))


def package_dir() -> Path:
    spec = importlib.util.find_spec("spendgate")
    assert spec is not None and spec.submodule_search_locations is not None, "spendgate is not installed"
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def cached_bytecode(env: dict[str, str], cwd: str, prefix: Path, *, own: bool) -> dict[str, str]:
    """The environment of one case: one untimed run of each command writes every imported module's
    bytecode under `prefix`; without `own`, Spendgate's is then removed and never written again."""
    writing = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    writing["PYTHONPYCACHEPREFIX"] = str(prefix)
    for args in COMMANDS:
        subprocess.run([spendgate(), *args], env=writing, cwd=cwd, capture_output=True, check=True)
    if own:
        return writing
    # the prefix mirrors absolute paths: <prefix>/<path of the package without its root>
    shutil.rmtree(prefix / package_dir().relative_to(package_dir().anchor))
    return {**writing, "PYTHONDONTWRITEBYTECODE": "1"}


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
        cases = {
            "": cached_bytecode(env, folder, Path(folder, "pyc-installed"), own=True),
            " (from source)": cached_bytecode(env, folder, Path(folder, "pyc-source"), own=False),
        }
        header = f"{'median s':>9} {'min s':>7} {'CPU median s':>13} {'CPU min s':>10}"
        print(f"{'command':<32} {header}   ({options.runs} runs)")
        for case, case_env in cases.items():
            for args in COMMANDS:
                runs = [timed(args, case_env, folder) for _ in range(options.runs)]
                walls, cpus = [w for w, _ in runs], [c for _, c in runs]
                label = "spendgate " + " ".join(args) + case
                print(
                    f"{label:<32} {statistics.median(walls):>9.3f} {min(walls):>7.3f} "
                    f"{statistics.median(cpus):>13.3f} {min(cpus):>10.3f}"
                )
        if options.importtime:
            for args in COMMANDS:
                print(f"\nslowest imports (cumulative ms, installed) for spendgate {' '.join(args)}:")
                for micros, name in slowest_imports(args, cases[""], folder):
                    print(f"  {micros / 1000:8.1f}  {name}")


if __name__ == "__main__":
    main()
