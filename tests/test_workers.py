"""`spendgate serve --workers N` on one host, without Redis: the workers share budget counters.

A budget is checked against one set of counters however many workers serve the calls, so a
burst spread over the workers can never spend past the hard stop (per-worker counters would let
N workers spend up to N times it).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path

import anthropic
import pytest

from spendgate.admin.service import create_key
from spendgate.fake_upstream import FakeUpstream
from spendgate.store import open_store
from tests.conftest import PROVIDER_ANTHROPIC_KEY, PROVIDER_OPENAI_KEY
from tests.procs import free_port, start_gateway
from tests.test_budgets import CALL_NANOS, PROMPT, USAGE, worst_nanos
from tests.test_production import wait_for_rows

CALLS = 100


async def burst(url: str, key: str) -> list[int]:
    """CALLS concurrent Messages calls through the SDK; the HTTP status of each."""
    client = anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0, timeout=30)
    extra = {"x-fake-usage": json.dumps(USAGE), "x-fake-latency-ms": "50"}

    async def one() -> int:
        try:
            await client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=1000,
                messages=[{"role": "user", "content": PROMPT}],
                extra_headers=extra,
            )
        except anthropic.APIStatusError as exc:
            return exc.status_code
        return 200

    try:
        return list(await asyncio.gather(*(one() for _ in range(CALLS))))
    finally:
        await client.close()


def journal_owners(spool: Path, nonempty: bool) -> set[str]:
    """The process ids that have journal segments in `spool` (with rows in them, if `nonempty`)."""
    return {
        match.group(1)
        for path in spool.glob("journal-*.jsonl")
        if (match := re.match(r"journal-(\d+)-", path.name)) and (not nonempty or path.stat().st_size > 0)
    }


@pytest.mark.parametrize("ingest_process", ["false", "true"])  # each worker's thread, or one ingester
def test_two_workers_share_counters_and_never_pass_the_hard_stop(
    tmp_path: Path, fake: FakeUpstream, ingest_process: str
) -> None:
    database = f"sqlite:///{tmp_path}/spendgate.db"
    store = open_store(database)
    store.migrate()
    store.create_org("acme")
    store.create_team("acme", "platform", "CC-100")
    _, key = create_key(store, name="k", team="platform")
    # room for exactly 10 worst cases at the hard stop (150% of the amount)
    budget = store.create_budget(
        name="shared", scope_type="team", scope_value="platform",
        amount_nanos=worst_nanos(1000) * 10 * 100 // 150 + 100,
    )
    assert budget.limit_nanos() < 11 * worst_nanos(1000)
    spool = tmp_path / "spool"
    env = {
        name: value for name, value in os.environ.items()
        if name not in ("SPENDGATE_REDIS_URL", "SPENDGATE_COUNTERS_DIR")
    }
    env.update(
        SPENDGATE_DATABASE_URL=database,
        SPENDGATE_SPOOL_DIR=str(spool),
        SPENDGATE_ANTHROPIC_BASE_URL=fake.url,
        SPENDGATE_ANTHROPIC_API_KEY=PROVIDER_ANTHROPIC_KEY,
        SPENDGATE_OPENAI_BASE_URL=fake.openai_url,
        SPENDGATE_OPENAI_API_KEY=PROVIDER_OPENAI_KEY,
        SPENDGATE_LOG_LEVEL="warning",
        SPENDGATE_LEDGER_INGEST_PROCESS=ingest_process,
    )
    port = free_port()
    server = start_gateway(env, port, workers=2)
    try:
        # Each worker opens its journal as it starts: wait for both before the burst.
        deadline = time.monotonic() + 30
        while len(journal_owners(spool, nonempty=False)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # and for the second one's start-up to finish
        statuses = asyncio.run(burst(f"http://127.0.0.1:{port}", key))
        # Both workers answered calls: each journals the rows it records into its own segment.
        writers = journal_owners(spool, nonempty=True)
    finally:
        server.terminate()
        server.wait(30)
    assert len(writers) == 2, f"the calls did not reach both workers (journals of {writers})"
    ok, refused = statuses.count(200), statuses.count(429)
    assert ok + refused == CALLS and 10 <= ok < CALLS
    rows = wait_for_rows(store, CALLS)
    spent = sum(r["cost_nanos"] for r in rows)
    assert len(rows) == CALLS and spent == ok * CALL_NANOS
    assert spent <= budget.limit_nanos()
    assert (spool / "counters").is_dir()
    store.close()
