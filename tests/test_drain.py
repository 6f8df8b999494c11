"""SIGTERM drains a gateway, then stops it: nothing in flight is cut, nothing answered is lost.

A real `spendgate serve` process on loopback, driven with the official SDK, against the fake provider.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from spendgate.fake_upstream import FakeUpstream
from spendgate.store import open_store
from tests.procs import free_port, provider_env, seed_database, start_gateway

MODEL = "claude-haiku-4-5"


def _gateway(tmp_path: Path, fake: FakeUpstream, **env: str) -> tuple[subprocess.Popen[bytes], str, str]:
    db = tmp_path / "drain.db"
    key = seed_database(f"sqlite:///{db}", "drain")
    environ = {
        **os.environ,
        "SPENDGATE_DATABASE_URL": f"sqlite:///{db}",
        **provider_env(fake),
        **env,
    }
    port = free_port()
    return start_gateway(environ, port), f"http://127.0.0.1:{port}", key


def _ledger(tmp_path: Path) -> list[dict[str, Any]]:
    store = open_store(f"sqlite:///{tmp_path / 'drain.db'}")
    try:
        return store.ledger_rows()
    finally:
        store.close()


def _port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


def test_sigterm_drains_then_stops_and_every_answered_call_is_in_the_ledger(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    delay = 2.0
    proc, url, key = _gateway(tmp_path, fake, SPENDGATE_DRAIN_DELAY_S=str(delay), SPENDGATE_LOG_LEVEL="info")
    client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
    # A stream of ~27 events 150 ms apart (~4 s): in flight when SIGTERM lands, and after the port closes.
    slow: dict[str, Any] = {}
    started = threading.Event()

    def stream() -> None:
        with client.messages.stream(
            model=MODEL,
            max_tokens=200,
            messages=[{"role": "user", "content": "a slow answer"}],
            extra_headers={"x-fake-output-tokens": "80", "x-fake-chunk-delay-ms": "150"},
        ) as events:
            for _ in events.text_stream:
                started.set()
            slow["message"] = events.get_final_message()
            slow["request_id"] = events.response.headers["x-spendgate-request-id"]

    thread = threading.Thread(target=stream)
    thread.start()
    assert started.wait(10), "the stream did not start"
    assert httpx.get(f"{url}/readyz").status_code == 200

    sigterm = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 1
    while httpx.get(f"{url}/readyz").status_code != 503:
        assert time.monotonic() < deadline, "/readyz still 200 a second after SIGTERM"
        time.sleep(0.02)
    health = httpx.get(f"{url}/healthz")
    assert health.status_code == 200 and health.json()["draining"] is True

    # During the delay a new call is still served, on a connection that will not be reused.
    during = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "while draining"}]
    )
    assert during.status_code == 200
    assert during.headers["connection"] == "close"
    during_id = during.headers["x-spendgate-request-id"]

    while _port_open(url):
        assert time.monotonic() - sigterm < delay + 5, "the port stayed open past the drain delay"
        time.sleep(0.05)
    closed_after = time.monotonic() - sigterm
    assert closed_after >= delay * 0.9
    assert proc.poll() is None, "the gateway stopped with a call still in flight"

    thread.join(20)
    message = slow["message"]
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 80
    proc.wait(30)
    stopped_after = time.monotonic() - sigterm
    log = proc.stderr.read().decode() if proc.stderr else ""
    assert "draining" in log

    rows = _ledger(tmp_path)
    ids = [r["request_id"] for r in rows]
    assert sorted(ids) == sorted([slow["request_id"], during_id])  # each once, none lost
    slow_row = next(r for r in rows if r["request_id"] == slow["request_id"])
    assert slow_row["output_tokens"] == 80
    assert not list((tmp_path / "drain.db.spool").glob("journal-*.jsonl"))
    print(f"port closed {closed_after:.2f} s and process exited {stopped_after:.2f} s after SIGTERM")


def test_a_second_sigterm_skips_the_rest_of_the_delay(tmp_path: Path, fake: FakeUpstream) -> None:
    proc, url, key = _gateway(tmp_path, fake, SPENDGATE_DRAIN_DELAY_S="60")
    anthropic.Anthropic(base_url=url, api_key=key, max_retries=0).messages.create(
        model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "one call"}]
    )
    sigterm = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert proc.poll() is None and httpx.get(f"{url}/readyz").status_code == 503
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)
    assert time.monotonic() - sigterm < 10
    assert len(_ledger(tmp_path)) == 1  # flushed on the way out


@pytest.mark.parametrize("draining", [False, True])
def test_connection_close_only_while_draining(tmp_path: Path, fake: FakeUpstream, draining: bool) -> None:
    from spendgate.app import create_app
    from spendgate.servethread import ServerThread
    from tests.conftest import gateway_settings

    app = create_app(gateway_settings(tmp_path, fake))
    if draining:
        app.drain.begin()
    with ServerThread(app) as server:
        response = httpx.get(f"{server.url}/healthz")
        ready = httpx.get(f"{server.url}/readyz")
        live = httpx.get(f"{server.url}/livez")
    assert response.status_code == 200 and response.json()["draining"] is draining
    assert (response.headers.get("connection") == "close") is draining
    assert ready.status_code == (503 if draining else 200)
    assert live.status_code == 200
