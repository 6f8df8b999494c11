"""Anthropic Message Batches through Spendgate: ownership, metering once, at the batch rate."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
from typer.testing import CliRunner

from spendgate.cli import build_app
from spendgate.fake_upstream import FakeUpstream
from spendgate.models import MessageBatch
from spendgate.store import open_store
from tests.conftest import RunningGateway


def batch(batch_id: str, org_id: str = "org_1") -> MessageBatch:
    return MessageBatch(
        batch_id=batch_id,
        provider="anthropic",
        created_at="2026-11-20T10:00:00.000000Z",
        request_count=3,
        key_id="key_1",
        org_id=org_id,
        team_id="team_1",
        user_id=None,
        cost_center="CC-1",
        use_case="summaries",
        tags={"repo": "api"},
        session_id=None,
        user_agent="anthropic-python",
        create_request_id="sg-1",
    )


def test_batch_store_claims_metering_once(database_url: str) -> None:
    store = open_store(database_url)
    store.migrate()
    try:
        store.insert_batch(batch("msgbatch_a"))
        store.insert_batch(batch("msgbatch_b", org_id="org_2"))
        store.insert_batch(batch("msgbatch_a", org_id="org_9"))  # a replay changes nothing
        assert store.get_batch("msgbatch_a") == batch("msgbatch_a")
        assert store.get_batch("msgbatch_x") is None
        assert store.batch_orgs(["msgbatch_a", "msgbatch_b", "msgbatch_x"]) == {
            "msgbatch_a": "org_1",
            "msgbatch_b": "org_2",
        }
        now = "2026-11-21T10:00:00.000000Z"
        assert store.claim_batch_metering("msgbatch_a", by="sg-2", now=now, calls=2, cost_nanos=77)
        assert not store.claim_batch_metering("msgbatch_a", by="sg-3", now=now, calls=2, cost_nanos=77)
        claimed = store.get_batch("msgbatch_a")
        assert claimed is not None and (claimed.metered_by, claimed.metered_cost_nanos) == ("sg-2", 77)
        assert [b.batch_id for b in store.list_batches(unmetered=True)] == ["msgbatch_b"]
    finally:
        store.close()


# ---- through Spendgate, with the anthropic SDK ------------------------------------------------------
# claude-haiku-4-5 on the price sheet: $1 input, $0.10 cache read, $5 output per MTok; batch 50% off.
HAIKU = {"input": 1.0, "cache_read": 0.10, "output": 5.0}
BATCH_USAGE = {"input_tokens": 1_000, "cache_read_input_tokens": 500, "output_tokens": 200}
PER_CALL_NANOS = round(
    (1_000 * HAIKU["input"] + 500 * HAIKU["cache_read"] + 200 * HAIKU["output"]) * 1000 * 0.5
)  # 1,025,000


def claude(url: str, key: str, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, default_headers=headers or None)


def ask(custom_id: str, **params: Any) -> dict[str, Any]:
    body = {"model": "claude-haiku-4-5", "max_tokens": 300, "messages": [{"role": "user", "content": "hi"}]}
    return {"custom_id": custom_id, "params": {**body, **params}}


def batch_rows_of(gateway: RunningGateway) -> list[dict[str, Any]]:
    return [r for r in gateway.rows() if r["endpoint"] == "/v1/messages/batches"]


def test_batch_calls_land_once_at_the_batch_rate_for_the_creating_key(gateway: RunningGateway) -> None:
    creator = gateway.mint_key(name="batcher", team="platform", use_case="summaries")
    other_key = gateway.mint_key(name="reader", team="platform")  # same org, another key
    usage = {"x-fake-usage": json.dumps(BATCH_USAGE), "x-spendgate-tags": "repo=docs"}
    created = claude(gateway.url, creator, **usage).messages.batches.create(
        requests=[ask("a"), ask("b"), ask("bad", max_tokens=0)]
    )
    assert created.processing_status == "in_progress"
    reader = claude(gateway.url, other_key)
    batch = reader.messages.batches.retrieve(created.id)
    assert batch.processing_status == "ended"
    assert batch.results_url == f"{gateway.url}/v1/messages/batches/{created.id}/results"  # through Spendgate
    assert not batch_rows_of(gateway)  # nothing is metered before the results are read
    results = {r.custom_id: r.result.type for r in reader.messages.batches.results(created.id)}
    assert results == {"a": "succeeded", "b": "succeeded", "bad": "errored"}
    list(reader.messages.batches.results(created.id))  # read twice: still metered once
    rows = batch_rows_of(gateway)
    assert sorted(r["client_request_id"] for r in rows) == ["a", "b"]
    creator_key = gateway.gw.store.get_batch(created.id)
    assert creator_key is not None
    for row in rows:
        assert row["key_id"] == creator_key.key_id != gateway.key_id
        assert (row["use_case"], row["tags"], row["team_id"]) == (
            "summaries",
            {"repo": "docs"},
            gateway.team_id,
        )
        assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (1_000, 500, 200)
        assert row["cost_nanos"] == PER_CALL_NANOS and row["pricing_tier"] == "batch"
        assert row["upstream_request_id"] == created.id and not row["estimated"]
    assert creator_key.metered_calls == 2 and creator_key.metered_cost_nanos == 2 * PER_CALL_NANOS
    scrape = httpx.get(f"{gateway.url}/metrics").text
    [line] = [
        x
        for x in scrape.splitlines()
        if x.startswith("spendgate_cost_usd_total{") and 'use_case="summaries"' in x
    ]
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(2 * PER_CALL_NANOS / 1e9)


def test_batches_list_shows_what_is_metered(gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    sdk = claude(gateway.url, gateway.key, **{"x-fake-usage": json.dumps(BATCH_USAGE)})
    read = sdk.messages.batches.create(requests=[ask("a")])
    unread = sdk.messages.batches.create(requests=[ask("b"), ask("c")])
    sdk.messages.batches.retrieve(read.id)
    list(sdk.messages.batches.results(read.id))
    monkeypatch.setenv("SPENDGATE_DATABASE_URL", gateway.gw.settings.database_url)
    app = build_app()
    listed = CliRunner().invoke(app, ["batches", "list", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    by_id = {b["batch_id"]: b for b in json.loads(listed.stdout)}
    assert (
        by_id[read.id]["metered_cost_nanos"] == PER_CALL_NANOS and by_id[read.id]["key_id"] == gateway.key_id
    )
    assert by_id[unread.id]["metered_at"] is None and by_id[unread.id]["request_count"] == 2
    pending = CliRunner().invoke(app, ["batches", "list", "--unmetered", "--format", "json"])
    assert [b["batch_id"] for b in json.loads(pending.stdout)] == [unread.id]
    table = CliRunner().invoke(app, ["batches", "list"])
    assert table.exit_code == 0 and "Message Batches" in table.stdout and "not yet" in table.stdout


def test_other_orgs_and_outside_batches_are_not_found(gateway: RunningGateway, fake: FakeUpstream) -> None:
    mine = claude(gateway.url, gateway.key).messages.batches.create(requests=[ask("a")])
    gw = gateway.gw
    gw.store.create_org("rival")
    gw.store.create_team("rival", "red", "CC-9")
    stranger = claude(gateway.url, gateway.mint_key(name="red-key", team="red"))
    with pytest.raises(anthropic.NotFoundError):
        stranger.messages.batches.retrieve(mine.id)
    with pytest.raises(anthropic.NotFoundError):
        list(stranger.messages.batches.results(mine.id))
    assert mine.id not in [b.id for b in stranger.messages.batches.list()]
    assert mine.id in [b.id for b in claude(gateway.url, gateway.key).messages.batches.list()]
    # A batch made directly at the provider, not through Spendgate: unknown here.
    direct = anthropic.Anthropic(base_url=fake.url, api_key="sk-ant-provider-secret-0001", max_retries=0)
    outside = direct.messages.batches.create(requests=[ask("x")])
    with pytest.raises(anthropic.NotFoundError):
        claude(gateway.url, gateway.key).messages.batches.retrieve(outside.id)
    assert not batch_rows_of(gateway)


def test_cut_results_are_metered_on_the_next_whole_read(gateway: RunningGateway) -> None:
    sdk = claude(gateway.url, gateway.key)
    created = sdk.messages.batches.create(requests=[ask(f"r{i}") for i in range(4)])
    sdk.messages.batches.retrieve(created.id)
    with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError)):
        list(sdk.messages.batches.results(created.id, extra_headers={"x-fake-mode": "stream-cut"}))
    assert not batch_rows_of(gateway)
    assert len(list(sdk.messages.batches.results(created.id))) == 4
    assert len(batch_rows_of(gateway)) == 4


def test_delete_meters_unread_results_first(gateway: RunningGateway) -> None:
    sdk = claude(gateway.url, gateway.key, **{"x-fake-usage": json.dumps(BATCH_USAGE)})
    created = sdk.messages.batches.create(requests=[ask("a"), ask("b")])
    sdk.messages.batches.retrieve(created.id)
    assert sdk.messages.batches.delete(created.id).type == "message_batch_deleted"
    assert [r["cost_nanos"] for r in batch_rows_of(gateway)] == [PER_CALL_NANOS, PER_CALL_NANOS]


def test_cancel_before_it_ends_bills_nothing(gateway: RunningGateway) -> None:
    sdk = claude(gateway.url, gateway.key)
    created = sdk.messages.batches.create(requests=[ask("a")], extra_headers={"x-fake-batch-ms": "60000"})
    assert sdk.messages.batches.cancel(created.id).processing_status == "canceling"
    assert [r.result.type for r in sdk.messages.batches.results(created.id)] == ["canceled"]
    assert not batch_rows_of(gateway)


def test_batch_refused_when_its_worst_case_does_not_fit_a_budget(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    # Worst case of one request: its input bound plus 300 output tokens at the batch rate, > $0.0005.
    gateway.gw.store.create_budget(
        name="small", scope_type="team", scope_value=gateway.team_id, amount_nanos=500_000
    )
    gateway.gw.budgets.reload()
    sdk = claude(gateway.url, gateway.key)
    with pytest.raises(anthropic.RateLimitError) as caught:
        sdk.messages.batches.create(requests=[ask("a"), ask("b")])
    assert caught.value.response.headers["x-spendgate-budget"] == "small"
    assert not [r for r in fake.requests if r.path == "/v1/messages/batches"]
    with pytest.raises(anthropic.NotFoundError, match="no price"):
        sdk.messages.batches.create(requests=[ask("a", model="claude-unknown-1")])


def test_batch_spend_counts_against_budgets(gateway: RunningGateway) -> None:
    # A hard stop at 150% of $0.0016 = $0.0024: room for a batch's worst case (~$0.00077 a request:
    # 300 output tokens at $2.50/MTok, plus its input bound), not for another after $0.00205 is spent.
    gateway.gw.store.create_budget(
        name="team", scope_type="team", scope_value=gateway.team_id, amount_nanos=1_600_000
    )
    gateway.gw.budgets.reload()
    sdk = claude(gateway.url, gateway.key, **{"x-fake-usage": json.dumps(BATCH_USAGE)})
    created = sdk.messages.batches.create(requests=[ask("a"), ask("b")])
    sdk.messages.batches.create(requests=[ask("c")])  # fits while nothing is spent yet
    sdk.messages.batches.retrieve(created.id)
    list(sdk.messages.batches.results(created.id))  # 2 x $0.001025 spent
    with pytest.raises(anthropic.RateLimitError):
        sdk.messages.batches.create(requests=[ask("d")])
