"""What a real `spendgate serve` writes to its log when a provider cuts a stream: one line that
names the call, and no traceback (the person on call reads a traceback as a crash).

A `spendgate serve` process on loopback, driven with the official SDK, against the fake provider.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anthropic
import pytest

from spendgate.fake_upstream import FakeUpstream
from spendgate.store import open_store
from tests.procs import free_port, provider_env, seed_database, start_gateway
from tests.test_anthropic_proxy import assert_cut

MODEL = "claude-haiku-4-5"


def test_a_cut_stream_is_one_log_line_not_a_traceback(tmp_path: Path, fake: FakeUpstream) -> None:
    db = tmp_path / "logs.db"
    key = seed_database(f"sqlite:///{db}", "logs")
    port = free_port()
    environ = {**os.environ, "SPENDGATE_DATABASE_URL": f"sqlite:///{db}", **provider_env(fake)}
    proc = start_gateway(environ, port)
    url = f"http://127.0.0.1:{port}"
    try:
        client = anthropic.Anthropic(
            base_url=url, api_key=key, max_retries=0, default_headers={"x-fake-mode": "stream-cut"}
        )
        with (
            pytest.raises(Exception) as cut_by_provider,
            client.messages.stream(
                model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "x"}]
            ) as stream,
        ):
            for _ in stream.text_stream:
                pass
        assert_cut(cut_by_provider.value)
        # The gateway keeps serving, and a real failure would still be logged in full.
        ok = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0).messages.create(
            model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "still there?"}]
        )
        assert ok.usage.output_tokens > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    log = proc.stderr.read().decode() if proc.stderr else ""
    store = open_store(f"sqlite:///{db}")
    try:
        rows = store.ledger_rows(latest=10)
    finally:
        store.close()
    cut = [r for r in rows if r["status"] in {"upstream_cut", "stream_incomplete"}]
    assert len(cut) == 1 and len(rows) == 2
    assert f"upstream stream cut for {cut[0]['request_id']}" in log
    assert "Exception in ASGI application" not in log
    assert "Traceback" not in log
