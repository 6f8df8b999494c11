"""The things under test, each started as its own process on a free loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import HOST, Proc, StartError, free_port, run_json

BENCH = Path(__file__).resolve().parent
LITELLM_VENV = BENCH / ".litellm-venv"
LITELLM_CONFIG = BENCH / "litellm_config.yaml"
LITELLM_MASTER_KEY = "sk-bench-" + secrets.token_hex(32)  # fresh each run; LiteLLM refuses weak keys
FAKE_ANTHROPIC_KEY = "fake-anthropic-key"
FAKE_OPENAI_KEY = "fake-openai-key"
# -P: `python -m` and `-c` put the working directory first on sys.path, so run from a checkout
# they imported that checkout's spendgate ahead of PYTHONPATH, and `--baseline` measured the
# working tree twice. With -P the package comes from PYTHONPATH (the baseline) or the install.
SPENDGATE_PYTHON = (sys.executable, "-P")
READY_TIMEOUT_S = 30.0
LITELLM_READY_TIMEOUT_S = 180.0
LITELLM_SETUP_TIMEOUT_S = 1200.0


@dataclass
class Target:
    name: str  # direct, bare, spendgate, litellm
    url: str  # base URL, without /v1
    key: str  # sent as x-api-key
    proc: Proc | None = None  # None: nothing of ours runs for it (direct)
    startup_s: float | None = None
    notes: list[str] = field(default_factory=list)
    workdir: Path | None = None  # removed on stop
    processes: int = 1  # serving processes (a whole core each, at most)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    # Only loopback: nothing may leave the machine, even through a configured proxy.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(var, None)
    return env


def start_fake(
    logs: Path, latency_ms: float, output_tokens: int | None = None, stream_chunks: str = "whole"
) -> Target:
    """The fake upstream. `stream_chunks="whole"` (the default) has it write each stream in one go:
    with a write per event, the fake (a Python process on the same two cores) used 80-100% of a core
    at stream c=50 and held the bare proxy back, so the streaming cells measured the fake."""
    port = free_port()
    argv = [
        sys.executable, "-m", "spendgate", "fake-upstream", "--host", HOST, "--port", str(port),
        "--latency-ms", str(latency_ms), "--chunk-delay-ms", "0",
        "--anthropic-key", FAKE_ANTHROPIC_KEY, "--openai-key", FAKE_OPENAI_KEY,
    ]
    if stream_chunks == "whole":
        argv.append("--whole-streams")
    if output_tokens is not None:  # the fake's default otherwise (capped by each call's max_tokens)
        argv += ["--output-tokens", str(output_tokens)]
    proc = Proc("fake upstream", argv, base_env(), logs / "fake_upstream.log")
    url = f"http://{HOST}:{port}"
    startup = proc.wait_ready(f"{url}/api/hello", READY_TIMEOUT_S)
    return Target("fake", url, FAKE_ANTHROPIC_KEY, proc, startup)


def direct(fake: Target) -> Target:
    return Target("direct", fake.url, FAKE_ANTHROPIC_KEY, None, 0.0, ["load straight at the fake upstream"])


def start_bare(logs: Path, fake: Target, wrapper: tuple[str, ...] = ()) -> Target:
    port = free_port()
    argv = [
        *wrapper, sys.executable, str(BENCH / "bare_proxy.py"), "--host", HOST, "--port", str(port),
        "--anthropic-base-url", fake.url, "--openai-base-url", f"{fake.url}/v1",
        "--anthropic-key", FAKE_ANTHROPIC_KEY, "--openai-key", FAKE_OPENAI_KEY,
    ]
    proc = Proc("bare proxy", argv, base_env(), logs / "bare_proxy.log")
    url = f"http://{HOST}:{port}"
    startup = proc.wait_ready(f"{url}/healthz", READY_TIMEOUT_S * (10 if wrapper else 1))
    return Target("bare", url, "unused-by-bare-proxy", proc, startup)


def spendgate_env(workdir: Path, fake: Target) -> dict[str, str]:
    env = base_env()
    env.update(
        SPENDGATE_DATABASE_URL=f"sqlite:///{workdir / 'spendgate.db'}",
        SPENDGATE_SPOOL_DIR=str(workdir / "spool"),
        SPENDGATE_ANTHROPIC_BASE_URL=fake.url,
        SPENDGATE_ANTHROPIC_API_KEY=FAKE_ANTHROPIC_KEY,
        SPENDGATE_OPENAI_BASE_URL=f"{fake.url}/v1",
        SPENDGATE_OPENAI_API_KEY=FAKE_OPENAI_KEY,
        SPENDGATE_LOG_LEVEL="warning",
    )
    return env


def mint_key(env: dict[str, str]) -> str:
    """A virtual key via the CLI; falls back to the Python API if the CLI is not there yet."""
    cli = [*SPENDGATE_PYTHON, "-m", "spendgate"]
    try:
        run_json([*cli, "orgs", "create", "bench"], 60, env)
        run_json([*cli, "teams", "create", "bench", "--org", "bench", "--cost-center", "BENCH"], 60, env)
        argv = [*cli, "keys", "create", "--name", "bench", "--team", "bench", "--format", "json"]
        out = run_json(argv, 60, env)
        key: str = json.loads(out)["key"]
        return key
    except (RuntimeError, ValueError, KeyError, subprocess.TimeoutExpired):
        pass
    script = (
        "import os\n"
        "from spendgate.store import open_store\n"
        "from spendgate.admin.service import create_key\n"
        "s = open_store(os.environ['SPENDGATE_DATABASE_URL']); s.migrate()\n"
        "names = [o.name for o in s.list_orgs()]\n"
        "if 'bench' not in names: s.create_org('bench')\n"
        "if 'bench' not in [t.name for t in s.list_teams()]: s.create_team('bench', 'bench', 'BENCH')\n"
        "_, secret = create_key(s, name='bench-py', team='bench'); s.close(); print(secret)\n"
    )
    return run_json([*SPENDGATE_PYTHON, "-c", script], 60, env).strip()


BUDGET_SCRIPT = (
    "import os\n"
    "from spendgate.store import open_store\n"
    "s = open_store(os.environ['SPENDGATE_DATABASE_URL'])\n"
    "scopes = [('org', 'bench'), ('team', 'bench'), ('cost_center', 'BENCH'), ('use_case', 'untagged'),"
    " ('key', s.list_keys()[-1].id)]\n"
    "for i, (kind, value) in enumerate(scopes[: int(os.environ['BENCH_BUDGETS'])]):\n"
    "    s.create_budget(name=f'bench-{i}', scope_type=kind, scope_value=value, amount_nanos=10**15)\n"
    "s.close()\n"
)


def start_spendgate(
    logs: Path,
    fake: Target,
    name: str = "spendgate",
    budgets: int = 0,
    redis_url: str | None = None,
    workers: int = 1,
    source: Path | None = None,
    extra_env: dict[str, str] | None = None,
    wrapper: tuple[str, ...] = (),
    entry: tuple[str, ...] = ("-m", "spendgate"),
) -> Target:
    """Spendgate on a fresh SQLite file; with `budgets`, that many budgets apply to every call
    (enforced, never exhausted), on in-process counters or, with `redis_url`, on Redis; with
    `workers`, `spendgate serve --workers N`; with `source`, the spendgate package of that
    checkout (another commit, for a before/after in one run) instead of the installed one; with
    `wrapper`, run under that command (valgrind: bench/cloud_bench.py --instructions); with `entry`,
    that script in place of `-m spendgate` (it takes `serve --host H --port P`: bench/shell_proxy.py)."""
    workdir = Path(tempfile.mkdtemp(prefix="spendgate-bench-"))
    try:
        env = spendgate_env(workdir, fake)
        env.update(extra_env or {})
        if source is not None:  # found before the installed (editable) package
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
            where = "import spendgate; print(spendgate.__file__)"
            found = run_json([*SPENDGATE_PYTHON, "-c", where], 60, env).strip()
            if not Path(found).resolve().is_relative_to(source.resolve()):
                raise StartError(f"{name}: spendgate imports from {found}, not from {source}")
        if redis_url:
            # A prefix of its own; its counters expire with their period.
            env.update(SPENDGATE_REDIS_URL=redis_url, SPENDGATE_REDIS_PREFIX=f"{workdir.name}:")
        key = mint_key(env)
        if budgets:
            run_json([*SPENDGATE_PYTHON, "-c", BUDGET_SCRIPT], 60, {**env, "BENCH_BUDGETS": str(budgets)})
        port = free_port()
        argv = [*wrapper, *SPENDGATE_PYTHON, *entry, "serve", "--host", HOST, "--port", str(port)]
        if workers > 1:
            argv += ["--workers", str(workers)]
        proc = Proc(name, argv, env, logs / f"{name}.log")
        url = f"http://{HOST}:{port}"
        startup = proc.wait_ready(f"{url}/healthz", READY_TIMEOUT_S * (10 if wrapper else 1))
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    notes = ["fresh SQLite database and spool in a temporary folder"]
    if budgets:
        notes.append(f"{budgets} budgets apply to every call" + (" (Redis counters)" if redis_url else ""))
    if workers > 1:
        notes.append(f"spendgate serve --workers {workers}")
    if source is not None:
        notes.append(f"spendgate from {source} ({git_head(source)})")
    notes += [f"{name}={value}" for name, value in (extra_env or {}).items()]
    return Target(name, url, key, proc, startup, notes, workdir, max(workers, 1))


def git_head(folder: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=False)
    except OSError:
        return "?"
    return out.stdout.strip() or "?"


def ledger_ids(target: Target, expected: int, wait_s: float = 30.0) -> list[str] | None:
    """The client call id of every row in a Spendgate target's ledger, once the writer has caught
    up with `expected` rows (waiting at most `wait_s`)."""
    if target.workdir is None:
        return None
    db = target.workdir / "spendgate.db"
    deadline = time.monotonic() + wait_s
    ids: list[str] | None = None
    while True:
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
                query = "SELECT client_request_id FROM ledger"
                ids = [str(row[0]) for row in conn.execute(query)]
        except sqlite3.Error:
            ids = None
        if (ids is not None and len(ids) >= expected) or time.monotonic() > deadline:
            return ids
        time.sleep(0.5)


def ensure_litellm(logs: Path) -> Path:
    """The litellm CLI in bench/.litellm-venv, running bench/setup_litellm.sh first if needed."""
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    print("LiteLLM is not installed yet: running bench/setup_litellm.sh (a few minutes) ...", flush=True)
    log = logs / "setup_litellm.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        try:
            rc = subprocess.run(
                ["bash", str(BENCH / "setup_litellm.sh")], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, timeout=LITELLM_SETUP_TIMEOUT_S, check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            rc = -1
    if rc != 0 or not exe.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
        what = f"exited with {rc}" if rc != 0 else f"did not leave {exe}"
        raise StartError(f"bench/setup_litellm.sh {what} (log: {log}):\n{tail}")
    return exe


def litellm_version() -> str | None:
    python = LITELLM_VENV / "bin" / "python"
    if not python.exists():
        return None
    try:
        out = run_json([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"], 60)
    except (RuntimeError, subprocess.TimeoutExpired):
        return None
    return out.strip()


def start_litellm(logs: Path, fake: Target) -> Target:
    exe = ensure_litellm(logs)
    port = free_port()
    env = base_env()
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # never download the price map
        LITELLM_LOG="ERROR",  # also silences uvicorn's access log
        LITELLM_BENCH_API_BASE=fake.url,
        LITELLM_BENCH_API_KEY=FAKE_ANTHROPIC_KEY,
        LITELLM_MASTER_KEY=LITELLM_MASTER_KEY,
    )
    for var in ("DATABASE_URL", "REDIS_HOST", "REDIS_URL"):
        env.pop(var, None)
    argv = [
        str(exe), "--config", str(LITELLM_CONFIG), "--host", HOST, "--port", str(port), "--num_workers", "1",
    ]
    proc = Proc("litellm", argv, env, logs / "litellm.log")
    url = f"http://{HOST}:{port}"
    startup = proc.wait_ready(f"{url}/health/liveliness", LITELLM_READY_TIMEOUT_S)
    return Target("litellm", url, LITELLM_MASTER_KEY, proc, startup, [f"litellm {litellm_version()}"])
