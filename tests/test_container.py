"""The container image, built and run the way CI can: Podman, a base from Debian packages, host network.

Marked `container`. Skipped unless SPENDGATE_TEST_CONTAINERS=1; `.ci/run` sets it (after installing
podman, runc, debootstrap and haproxy if missing), and then anything missing fails the tests.
`SPENDGATE_TEST_IMAGE=localhost/spendgate:ci` reuses an image already built by `.ci/build-image`.

The rolling restart runs two gateway containers against the machine's PostgreSQL and Redis and the
fake provider, behind HAProxy with the shipped `deploy/haproxy.cfg`, and drives them with the
official SDKs (no retries, so a refused call would show) while each replica in turn is stopped
with SIGTERM and started again.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from spendgate.admin.service import create_key
from spendgate.fake_upstream import FakeUpstream
from spendgate.store import open_store
from tests.procs import free_port, provider_env

# Building the image (when SPENDGATE_TEST_IMAGE is not given) and a rolling restart take minutes.
pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parent.parent
CONTAINERS_ENV = "SPENDGATE_TEST_CONTAINERS"
# The VM cannot raise limits or use hybrid cgroups; vfs works everywhere (docs/deploy.md).
PODMAN = ["podman", "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
IMAGE_LIMIT_BYTES = 250_000_000


def _podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:2])} failed ({done.returncode}): {done.stderr}")
    return done


@pytest.fixture(scope="session")
def image() -> str:
    if not os.environ.get(CONTAINERS_ENV):
        pytest.skip(f"container tests need Podman and {CONTAINERS_ENV}=1 (.ci/run sets it)")
    for tool in ("podman", "runc", "haproxy"):
        assert shutil.which(tool), f"{tool} is not installed ({CONTAINERS_ENV} is set; .ci/run installs it)"
    tag = os.environ.get("SPENDGATE_TEST_IMAGE")
    if tag:
        return tag
    tag = "localhost/spendgate:test"
    started = time.monotonic()
    build = subprocess.run(
        [str(ROOT / ".ci" / "build-image"), tag], capture_output=True, text=True, timeout=1500, check=False
    )
    assert build.returncode == 0, f"image build failed:\n{build.stdout}\n{build.stderr}"
    print(f"\n{build.stdout.strip()}\nimage built in {time.monotonic() - started:.0f} s")
    return tag


def test_the_gateway_image_is_small_runs_as_non_root_and_holds_the_core_only(image: str) -> None:
    size = int(_podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
    print(f"\n{image}: {size / 1e6:.1f} MB")
    assert size <= IMAGE_LIMIT_BYTES, f"{image} is {size / 1e6:.0f} MB"
    config = _podman("image", "inspect", "--format", "{{.Config.User}} {{.Config.Entrypoint}}", image)
    assert config.stdout.split(None, 1) == ["10001:10001", "[spendgate serve --host 0.0.0.0]\n"]
    probe = _podman(
        "run", "--rm", *LIMITS, "--entrypoint", "python3", image, "-c",
        "import importlib.util as u, os; "
        "print(os.getuid(), [m for m in ('matplotlib', 'reportlab', 'pyarrow', 'anthropic', 'openai', 'pip')"
        " if u.find_spec(m)])",
    )  # fmt: skip
    assert probe.stdout.strip() == "10001 []"
    report = _podman(
        "run", "--rm", *LIMITS, "--entrypoint", "spendgate", image,
        "report", "finance", "--month", "2026-10", "--output", "/tmp/reports",
        check=False,
    )  # fmt: skip
    assert report.returncode == 1
    assert "needs the 'reports' extra" in report.stderr
    assert "pip install 'spendgate[reports]'" in report.stderr


class Stack:
    """Gateway containers on the host network, cleaned up afterwards."""

    def __init__(self, image: str, env: dict[str, str]) -> None:
        self.image = image
        self.env = env
        self.tag = secrets.token_hex(4)
        self.names: list[str] = []

    def _env_args(self) -> list[str]:
        return [arg for k, v in self.env.items() for arg in ("-e", f"{k}={v}")]

    def once(self, *command: str) -> subprocess.CompletedProcess[str]:
        return _podman(
            "run", "--rm", "--network", "host", *LIMITS, *self._env_args(),
            "--entrypoint", command[0], self.image, *command[1:],
        )  # fmt: skip

    def gateway(self, n: int, port: int) -> str:
        name = f"spendgate-test-{self.tag}-{n}"
        self.names.append(name)
        _podman(
            "run", "--detach", "--name", name, "--network", "host", *LIMITS,
            # podman's periodic health checks need systemd timers; the probe itself is tested above
            "--health-interval", "disable",
            "-v", f"{name}:/var/lib/spendgate", *self._env_args(), "-e", f"SPENDGATE_PORT={port}",
            self.image,
        )  # fmt: skip
        return name

    def close(self) -> None:
        for name in self.names:
            _podman("rm", "--force", "--time", "0", name, check=False)
            _podman("volume", "rm", "--force", name, check=False)


def _wait_ready(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready within {timeout_s} s")


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Callable[[int, int], str]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(port_1: int, port_2: int) -> str:
        port = free_port()
        env = {
            **os.environ,
            "SPENDGATE_LB_BIND": f"127.0.0.1:{port}",
            "SPENDGATE_GATEWAY_1": f"127.0.0.1:{port_1}",
            "SPENDGATE_GATEWAY_2": f"127.0.0.1:{port_2}",
        }
        log = (tmp_path / "haproxy.log").open("wb")
        config = str(ROOT / "deploy" / "haproxy.cfg")
        procs.append(subprocess.Popen(["haproxy", "-db", "-f", config], env=env, stdout=log, stderr=log))
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def test_rolling_restart_under_load_refuses_no_call_and_loses_no_ledger_row(
    image: str,
    fake: FakeUpstream,
    postgres_url: str,
    redis_url: tuple[str, str],
    haproxy: Callable[[int, int], str],
) -> None:
    store = open_store(postgres_url)
    stack = Stack(
        image,
        {
            "SPENDGATE_DATABASE_URL": postgres_url,
            "SPENDGATE_REDIS_URL": redis_url[0],
            "SPENDGATE_REDIS_PREFIX": redis_url[1],
            **provider_env(fake),
        },
    )
    try:
        # The deploy step: migrations applied once, before any replica starts.
        migrated = stack.once("spendgate", "migrate").stdout.split("\n")
        shipped = sorted((ROOT / "spendgate" / "store" / "migrations").glob("*.sql"))
        assert [line.removeprefix("applied ") for line in migrated if line] == [p.stem for p in shipped]
        store.create_org("acme")
        store.create_team("acme", "platform", "CC-100")
        _, key = create_key(store, name="load", team="platform")

        ports = [free_port(), free_port()]
        names = [stack.gateway(n + 1, port) for n, port in enumerate(ports)]
        for port in ports:
            _wait_ready(f"http://127.0.0.1:{port}")
        url = haproxy(*ports)
        _wait_ready(url)

        answered: list[str] = []
        failed: list[str] = []
        stop = threading.Event()
        lock = threading.Lock()

        def drive(n: int) -> None:
            claude = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=60)
            gpt = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)
            slow = {"x-fake-latency-ms": "100", "x-fake-chunk-delay-ms": "20"}
            messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": f"load {n}"}]
            i = 0
            while not stop.is_set() and i < 5000:  # bounded; the stop event ends it much sooner
                i += 1
                try:
                    kind = i % 4
                    if kind == 0:
                        raw = claude.messages.with_raw_response.create(
                            model="claude-haiku-4-5", max_tokens=32, messages=messages, extra_headers=slow
                        )
                        assert raw.parse().usage.output_tokens > 0
                        request_id = raw.headers["x-spendgate-request-id"]
                    elif kind == 1:
                        with claude.messages.stream(
                            model="claude-haiku-4-5", max_tokens=32, messages=messages, extra_headers=slow
                        ) as events:
                            assert events.get_final_message().usage.output_tokens > 0
                            request_id = events.response.headers["x-spendgate-request-id"]
                    elif kind == 2:
                        chat = gpt.chat.completions.with_raw_response.create(
                            model="gpt-4o-mini",
                            max_tokens=32,
                            messages=[{"role": "user", "content": f"load {n}"}],
                            extra_headers=slow,
                        )
                        assert chat.parse().usage is not None
                        request_id = chat.headers["x-spendgate-request-id"]
                    else:
                        streamed = gpt.chat.completions.with_raw_response.create(
                            model="gpt-4o-mini",
                            max_tokens=32,
                            messages=[{"role": "user", "content": f"load {n}"}],
                            stream=True,
                            stream_options={"include_usage": True},
                            extra_headers=slow,
                        )
                        chunks = list(streamed.parse())
                        assert chunks[-1].usage is not None
                        request_id = streamed.headers["x-spendgate-request-id"]
                except Exception as exc:  # every failure is the finding, not a crash of the driver
                    with lock:
                        failed.append(f"{type(exc).__name__}: {exc}")
                    continue
                with lock:
                    answered.append(request_id)

        drivers = [threading.Thread(target=drive, args=(n,)) for n in range(6)]
        for thread in drivers:
            thread.start()
        drains = []
        try:
            time.sleep(3)
            for name, port in zip(names, ports, strict=True):
                before = len(answered)
                started = time.monotonic()
                _podman("stop", "--time", "60", name, timeout=90)  # SIGTERM, then waits for the exit
                drains.append(time.monotonic() - started)
                assert len(answered) > before, "no call was answered while the replica drained"
                _podman("start", name)
                _wait_ready(f"http://127.0.0.1:{port}")
                time.sleep(3)  # HAProxy puts it back after two good checks; then load on both again
        finally:
            stop.set()
            for thread in drivers:
                thread.join(90)

        assert not failed, f"{len(failed)} calls failed during the rolling restart, e.g. {failed[:3]}"
        assert len(answered) >= 100, f"too little load ({len(answered)} calls)"
        for name in names:
            log = _podman("logs", name).stderr
            assert "SIGTERM: draining" in log, f"{name} did not drain"
            assert "Marking" not in log, f"{name} applied a migration itself"

        deadline = time.monotonic() + 30
        while True:
            rows = store.ledger_rows()
            ids = [r["request_id"] for r in rows]
            if set(answered) <= set(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        missing = set(answered) - set(ids)
        assert not missing, f"{len(missing)} answered calls missing from the ledger"
        assert len(ids) == len(set(ids)) == len(answered), "a call was counted twice, or one not answered"
        print(
            f"\nrolling restart: {len(answered)} calls answered, 0 refused; "
            f"drain (podman stop) {drains[0]:.1f} s and {drains[1]:.1f} s"
        )
    finally:
        stack.close()
        store.close()
