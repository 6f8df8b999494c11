"""Who lands the ledger rows by default ('auto'): a child process when a CPU is left over beside the
serving processes, else a thread of each. Explicit true/false always win."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from spendgate.config import Settings, usable_cpus
from spendgate.fake_upstream import FakeUpstream
from tests.procs import free_port, provider_env, seed_database, start_gateway


def test_auto_is_the_default_and_explicit_values_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPENDGATE_LEDGER_INGEST_PROCESS", raising=False)
    assert Settings().ledger_ingest_process == "auto"
    monkeypatch.setenv("SPENDGATE_LEDGER_INGEST_PROCESS", "false")
    assert Settings().ingest_in_process(workers=1) is False
    monkeypatch.setenv("SPENDGATE_LEDGER_INGEST_PROCESS", "true")
    assert Settings().ingest_in_process(workers=64) is True
    monkeypatch.setenv("SPENDGATE_LEDGER_INGEST_PROCESS", "AUTO")
    with pytest.raises(ValueError, match="ledger_ingest_process"):
        Settings()  # 'auto' is spelled in lower case, as the other choices are


def test_auto_uses_the_child_process_only_when_a_cpu_is_left_over() -> None:
    settings = Settings(ledger_ingest_process="auto")
    cpus = usable_cpus()
    assert settings.ingest_in_process(workers=1) is (cpus > 1)
    assert settings.ingest_in_process(workers=int(cpus)) is False
    assert settings.ingest_in_process(workers=int(cpus) + 3) is False


def _children(pid: int) -> list[str]:
    """Command lines of the processes whose parent is `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid:
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError, IndexError):
            continue
    return found


@pytest.mark.skipif(usable_cpus() < 2, reason="'auto' picks the thread on a single CPU")
def test_spendgate_serve_lands_rows_from_a_child_process_by_default(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    db = tmp_path / "auto.db"
    key = seed_database(f"sqlite:///{db}", "auto")
    env = {k: v for k, v in os.environ.items() if k != "SPENDGATE_LEDGER_INGEST_PROCESS"}
    env.update({"SPENDGATE_DATABASE_URL": f"sqlite:///{db}", **provider_env(fake)})
    env["SPENDGATE_LOG_LEVEL"] = "warning"
    port = free_port()
    proc = start_gateway(env, port)
    try:
        body = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        response = httpx.post(f"http://127.0.0.1:{port}/v1/messages", json=body, headers=headers, timeout=10)
        assert response.status_code == 200
        assert any("spendgate.ledger.ingest" in line for line in _children(proc.pid))
        # The row arrives through the child: /metrics counts what the ingester wrote.
        deadline = time.monotonic() + 10
        written = 0.0
        while time.monotonic() < deadline:
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            name = "spendgate_ledger_rows_written"
            lines = [line for line in metrics.splitlines() if line.startswith(name)]
            written = float(lines[0].split()[-1]) if lines else 0.0
            if written >= 1:
                break
            time.sleep(0.1)
        assert written == 1
    finally:
        proc.terminate()
        proc.wait(20)
