"""SIGKILL under load loses no call that got a response, and a restart counts none twice."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from spendgate.fake_upstream import FakeUpstream
from spendgate.store import open_store
from tests.procs import free_port, provider_env, seed_database, start_gateway


@pytest.mark.parametrize("ingest_process", ["false", "true"])  # a writer thread, or the ingest process
def test_sigkill_under_load_loses_nothing_and_doubles_nothing(
    tmp_path: Path, fake: FakeUpstream, ingest_process: str
) -> None:
    db = tmp_path / "crash.db"
    key = seed_database(f"sqlite:///{db}", "load")
    env = {
        **os.environ,
        "SPENDGATE_DATABASE_URL": f"sqlite:///{db}",
        **provider_env(fake),
        # A slow writer keeps many rows only in the journal when the kill lands.
        "SPENDGATE_LEDGER_FLUSH_INTERVAL_S": "1.0",
        "SPENDGATE_LOG_LEVEL": "warning",
        "SPENDGATE_LEDGER_INGEST_PROCESS": ingest_process,
    }
    port = free_port()
    proc = start_gateway(env, port)
    url = f"http://127.0.0.1:{port}"

    completed: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def worker(n: int) -> None:
        stream = n % 2 == 0
        body = {
            "model": "claude-haiku-4-5",
            "max_tokens": 16,
            "stream": stream,
            "messages": [{"role": "user", "content": f"load {n}"}],
        }
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        with httpx.Client(timeout=10) as client:
            for _ in range(2000):  # bounded; the kill ends it much sooner
                if stop.is_set():
                    return
                try:
                    response = client.post(f"{url}/v1/messages", json=body, headers=headers)
                    text = response.text
                except httpx.HTTPError:
                    return
                complete = "message_stop" in text if stream else '"usage"' in text
                if response.status_code == 200 and complete:
                    with lock:
                        completed.append(response.headers["x-spendgate-request-id"])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(completed) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    stop.set()
    for t in threads:
        t.join(15)
    assert len(completed) >= 100, f"too little load before the kill ({len(completed)} calls)"
    assert len(completed) == len(set(completed))

    # Restart twice: the first start replays the journal, the second must change nothing.
    counts = []
    for _ in range(2):
        proc = start_gateway(env, port)
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        check = open_store(f"sqlite:///{db}")
        ids = [row["request_id"] for row in check.ledger_rows()]
        check.close()
        counts.append(len(ids))
        missing = set(completed) - set(ids)
        assert not missing, f"{len(missing)} answered calls missing from the ledger"
        assert len(ids) == len(set(ids))
    assert counts[0] == counts[1]
    assert not list((tmp_path / "crash.db.spool").glob("journal-*.jsonl"))
