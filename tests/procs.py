"""Gateway processes for tests that need a real `spendgate serve` (crashes, several replicas)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx

from spendgate.fake_upstream import FakeUpstream
from tests.conftest import PROVIDER_ANTHROPIC_KEY, PROVIDER_OPENAI_KEY


def seed_database(database_url: str, key_name: str) -> str:
    """Migrate the database and give it org o, team t and one key for that team; the key's secret."""
    from spendgate.admin.service import create_key
    from spendgate.store import open_store

    store = open_store(database_url)
    try:
        store.migrate()
        store.create_org("o")
        store.create_team("o", "t", "CC")
        return create_key(store, name=key_name, team="t")[1]
    finally:
        store.close()


def provider_env(fake: FakeUpstream) -> dict[str, str]:
    """The settings that point a gateway process (or container) at the fake provider."""
    return {
        "SPENDGATE_ANTHROPIC_BASE_URL": fake.url,
        "SPENDGATE_ANTHROPIC_API_KEY": PROVIDER_ANTHROPIC_KEY,
        "SPENDGATE_OPENAI_BASE_URL": fake.openai_url,
        "SPENDGATE_OPENAI_API_KEY": PROVIDER_OPENAI_KEY,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gateway(env: dict[str, str], port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "spendgate", "serve", "--port", str(port), "--workers", str(workers)],
        env={"SPENDGATE_DRAIN_DELAY_S": "0", **env},  # tests stop it at once unless they test the drain
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"gateway did not start: {proc.stderr.read() if proc.stderr else b''!r}")
