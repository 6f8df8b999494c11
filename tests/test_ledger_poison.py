"""One bad request or answer must never stop the ledger: on SQLite and on PostgreSQL.

Values are checked where they enter (a NUL in a tag is refused, a boolean token count is no
count); a row the database still refuses is quarantined, and the rows behind it land.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from typer.testing import CliRunner

from spendgate.app import create_app
from spendgate.cli import build_app
from spendgate.fake_upstream import FakeUpstream
from spendgate.gateway import Gateway
from spendgate.models import LedgerRow
from spendgate.servethread import ServerThread
from tests.conftest import gateway_settings
from tests.seeded import metric, seed, serve_seeded

CHAT = [{"role": "user", "content": "hello"}]


@dataclass
class Gate:
    url: str
    gw: Gateway
    key: str
    database_url: str

    def openai(self, **headers: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.url}/v1", api_key=self.key, max_retries=0, default_headers=headers or None
        )

    def good_call(self) -> str:
        reply = self.openai().chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=CHAT)
        return reply.headers["x-spendgate-request-id"]

    def landed(self, request_id: str, timeout: float = 10) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = [r for r in self.gw.store.ledger_rows() if r["request_id"] == request_id]
            if rows:
                return rows[0]
            time.sleep(0.05)
        return None


@pytest.fixture
def gate(tmp_path: Path, fake: FakeUpstream, database_url: str) -> Iterator[Gate]:
    for url, gw, key in serve_seeded(tmp_path, fake, database_url=database_url):
        yield Gate(url, gw, key, database_url)


def test_nul_in_a_metadata_tag_is_refused_and_later_calls_land(gate: Gate, fake: FakeUpstream) -> None:
    client = gate.openai()
    for metadata in ({"use_case": "a\u0000b"}, {"tags": {"team": "x\u0000"}}, {"tags": "repo=a\u0001b"}):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="gpt-4o-mini", messages=CHAT, metadata=metadata)  # type: ignore[arg-type]
        assert "control characters" in str(caught.value)
    assert not fake.requests  # refused before anything left
    assert gate.landed(gate.good_call()) is not None


def test_a_boolean_token_count_from_the_provider_is_no_count(gate: Gate) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": True}
    reply = gate.openai(**{"x-fake-usage": json.dumps(usage)}).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=CHAT
    )
    row = gate.landed(reply.headers["x-spendgate-request-id"])
    assert row is not None and row["output_tokens"] == 0 and row["input_tokens"] == 10
    huge = {"prompt_tokens": 2**64, "completion_tokens": 5}
    reply = gate.openai(**{"x-fake-usage": json.dumps(huge)}).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=CHAT
    )
    row = gate.landed(reply.headers["x-spendgate-request-id"])
    assert row is not None and row["output_tokens"] == 5 and row["input_tokens"] == 0
    assert gate.landed(gate.good_call()) is not None


def test_anthropic_boolean_output_tokens_is_no_count(gate: Gate) -> None:
    client = anthropic.Anthropic(base_url=gate.url, api_key=gate.key, max_retries=0)
    reply = client.messages.with_raw_response.create(
        model="claude-haiku-4-5",
        max_tokens=10,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-fake-usage": json.dumps({"output_tokens": True, "input_tokens": 3})},
    )
    row = gate.landed(reply.headers["x-spendgate-request-id"])
    assert row is not None and row["output_tokens"] == 0 and row["input_tokens"] == 3


def poisoned(request_id: str) -> LedgerRow:
    """A row with values no entry check lets through: a NUL, an object where text belongs, an int
    past 64 bits (what a bug, or a journal from an older version, could hold)."""
    template = LedgerRow(
        request_id=request_id,
        provider="openai",
        endpoint="/v1/chat/completions",
        started_at="2026-11-20T10:00:00.000000Z",
        ended_at="2026-11-20T10:00:01.000000Z",
        status_code=200,
        status="ok",
        use_case="a\u0000b",
    )
    return replace(template, response_model={"not": "text"}, output_tokens=2**70)  # type: ignore[arg-type]


def test_a_row_the_database_refuses_is_quarantined_and_blocks_nothing(gate: Gate) -> None:
    gate.gw.ledger.record(poisoned("sg-poison-1"))
    after = gate.good_call()
    assert gate.landed(after) is not None, "the row behind the poisoned one never landed"
    [kept] = gate.gw.store.quarantined_ledger_rows()
    assert kept["request_id"] == "sg-poison-1"
    assert orjson.loads(kept["row_json"])["use_case"] == "a\u0000b"  # kept whole
    assert not [r for r in gate.gw.store.ledger_rows() if r["request_id"] == "sg-poison-1"]
    health = httpx.get(f"{gate.url}/healthz").json()
    assert health["ledger_rows_quarantined"] == 1 and health["status"] == "ok"
    assert metric(gate.url, "spendgate_ledger_rows_quarantined_total") == 1
    listed = CliRunner(env={"SPENDGATE_DATABASE_URL": gate.database_url}).invoke(
        build_app(), ["ledger", "quarantine", "--format", "json"]
    )
    assert listed.exit_code == 0, listed.output
    assert [r["request_id"] for r in json.loads(listed.stdout)] == ["sg-poison-1"]


def test_journal_replay_at_start_never_stops_the_gateway(
    tmp_path: Path, fake: FakeUpstream, database_url: str
) -> None:
    settings = gateway_settings(tmp_path, fake, database_url=database_url)
    first = create_app(settings).state.gateway
    good = replace(poisoned("sg-good-1"), use_case="fine", response_model=None, output_tokens=7)
    first.store.close()
    first.ledger.stop()  # never started: its own (empty) journal just goes away
    # What a dead process leaves: its journal segment, here with a poisoned line between good ones.
    spool = settings.resolved_spool_dir()
    bad = json.dumps(asdict(poisoned("sg-poison-2"))).encode()  # orjson refuses the 70-bit int
    lines = [orjson.dumps(good), bad, b"{torn", b"[1]"]
    (spool / "journal-1-1-000001.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    gw: Gateway = create_app(settings).state.gateway  # raised before
    try:
        assert [r["request_id"] for r in gw.store.ledger_rows()] == ["sg-good-1"]
        assert [r["request_id"] for r in gw.store.quarantined_ledger_rows()] == ["sg-poison-2"]
        assert gw.ledger.rows_quarantined == 1
        assert not list(spool.glob("journal-1-*"))
    finally:
        gw.ledger.stop()
        gw.store.close()


def test_healthz_reports_a_stalled_writer(tmp_path: Path, fake: FakeUpstream) -> None:
    settings = gateway_settings(tmp_path, fake, ledger_stall_unhealthy_s=0.5)
    app = create_app(settings)
    gw: Gateway = app.state.gateway
    key = seed(gw)
    with ServerThread(app) as server:
        gate = Gate(server.url, gw, key, settings.database_url)
        assert httpx.get(f"{server.url}/healthz").json()["ledger_stall_s"] == 0
        db_path = settings.sqlite_path()
        assert db_path is not None
        blocker = sqlite3.connect(db_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # the writer now waits on the database
        try:
            request_id = gate.good_call()
            time.sleep(1.0)
            health = httpx.get(f"{server.url}/healthz")
            assert health.status_code == 503, health.text
            assert health.json()["status"] == "unhealthy" and health.json()["ledger_stall_s"] > 0.5
            assert metric(server.url, "spendgate_ledger_stall_seconds") > 0.5
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert gate.landed(request_id) is not None
        assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_the_row_check_finds_every_misfit_value_in_every_column() -> None:
    """The journal rows' type check (run on every row the ingest process lands) against every
    kind of value that does not fit, column by column: a good row passes, and each bad one is
    named by its column."""
    from spendgate.ledger.quarantine import row_problem

    good = LedgerRow(
        request_id="sg-1", provider="anthropic", endpoint="/v1/messages", started_at="t0", ended_at="t1",
        status_code=200, status="ok", use_case="untagged", tags={"repo": "api"}, input_tokens=10,
        output_tokens=20, cost_nanos=123, counterfactual_cost_nanos=123, client_request_id="c",
    )  # fmt: skip
    assert row_problem(good) is None
    misfits: list[Any] = [None, True, 1.5, 2**64, -(2**64), "text", {"a": 1}, {1: "a"}, [], 7, {}]
    for name, spec in LedgerRow.__annotations__.items():
        for value in misfits:
            strings = not isinstance(value, dict) or all(type(x) is str for x in [*value, *value.values()])
            fits = (value is None and "None" in str(spec)) or (
                type(value).__name__ == str(spec).split("[")[0].split(" | ")[0]
                and not (type(value) is int and not -(2**63) <= value < 2**63)
                and strings
            )
            changed: dict[str, Any] = {name: value}
            problem = row_problem(replace(good, **changed))
            assert (problem is None) == fits, (name, value, problem)
            if problem is not None:
                assert problem.startswith(f"{name}: "), problem
