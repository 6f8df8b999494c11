"""Budgets enforced before the call leaves, on the embedded default (SQLite, local counters)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import httpx
import pytest

from spendgate.budgets.model import Budget, Tier, window_for
from spendgate.clock import iso
from spendgate.pricing import format_usd
from tests.conftest import RunningGateway

PROMPT = "y" * 3200  # bounds input at >= 1067 tokens, above the 1000 the fake reports
USAGE = {"input_tokens": 1000, "output_tokens": 1000}
CALL_NANOS = (1000 * 1 + 1000 * 5) * 1000  # Haiku 4.5: $1 in, $5 out -> $0.006


def worst_nanos(max_tokens: int) -> int:
    """What the gateway reserves for `body(max_tokens)`: its input bound and max_tokens, at Haiku's rates."""
    from spendgate.budgets.estimate import input_bound, worst_case_nanos
    from spendgate.pricing import Pricer

    price = Pricer().price("anthropic", "claude-haiku-4-5")
    assert price is not None
    return worst_case_nanos(
        price, input_bound(len(httpx.Request("POST", "/", json=body(max_tokens)).content)), max_tokens
    )


def body(max_tokens: int = 1000, stream: bool = False) -> dict[str, Any]:
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": max_tokens,
        "stream": stream,
        "messages": [{"role": "user", "content": PROMPT}],
    }


def headers(key: str, **extra: str) -> dict[str, str]:
    return {"x-api-key": key, "anthropic-version": "2023-06-01", "x-fake-usage": json.dumps(USAGE), **extra}


def add_budget(gateway: RunningGateway, **kwargs: Any) -> Budget:
    budget = gateway.gw.store.create_budget(**kwargs)
    gateway.gw.budgets.reload()
    return budget


async def burst(url: str, key: str, n: int, **extra: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        return list(
            await asyncio.gather(
                *(
                    client.post(f"{url}/v1/messages", json=body(), headers=headers(key, **extra))
                    for _ in range(n)
                )
            )
        )


def test_hundred_concurrent_calls_never_overshoot_the_hard_limit(gateway: RunningGateway) -> None:
    # Room for ten calls' worst case under the hard limit (150% of the amount).
    amount = worst_nanos(1000) * 10 * 100 // 150 + 100
    budget = add_budget(
        gateway, name="platform-month", scope_type="team", scope_value="platform", amount_nanos=amount
    )
    responses = asyncio.run(burst(gateway.url, gateway.key, 100, **{"x-fake-latency-ms": "50"}))
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(refused) == 100
    assert 10 <= len(ok) < 100 and refused
    error = refused[0].json()
    assert error["type"] == "error" and error["error"]["type"] == "rate_limit_error"
    message = error["error"]["message"]
    assert "platform-month" in message and "hard limit" in message and "resets at" in message
    assert "spendgate exemptions request" in message
    assert refused[0].headers["x-should-retry"] == "false"
    rows = gateway.rows()
    spent = sum(r["cost_nanos"] for r in rows)
    assert spent == len(ok) * CALL_NANOS
    assert spent <= budget.limit_nanos()
    assert sum(r["status"] == "budget_blocked" for r in rows) == len(refused)


def test_every_response_names_the_tightest_budget(gateway: RunningGateway) -> None:
    add_budget(gateway, name="org-wide", scope_type="org", scope_value="acme", amount_nanos=10**12)
    add_budget(gateway, name="ada-small", scope_type="user", scope_value="ada", amount_nanos=10**9)
    r = httpx.post(f"{gateway.url}/v1/messages", json=body(), headers=headers(gateway.key))
    assert r.status_code == 200
    assert r.headers["x-spendgate-budget"] == "ada-small"
    assert r.headers["x-spendgate-budget-scope"].startswith("user:")
    # $1 at 150% = $1.5 limit, minus nothing spent before this call
    assert r.headers["x-spendgate-budget-remaining-usd"] == "1.5"
    assert r.headers["x-spendgate-budget-reset"].endswith("Z")


def test_reservations_are_released_when_calls_end(gateway: RunningGateway) -> None:
    """A large max_tokens holds room only while its call runs."""
    add_budget(
        gateway,
        name="tight",
        scope_type="team",
        scope_value="platform",
        amount_nanos=(worst_nanos(60_000) + 5 * CALL_NANOS) * 100 // 150 + 100,
    )
    for _ in range(5):  # each call reserves ~$0.30 but settles at $0.006
        r = httpx.post(
            f"{gateway.url}/v1/messages", json=body(max_tokens=60_000), headers=headers(gateway.key)
        )
        assert r.status_code == 200


def test_tier_events_are_recorded_once_per_period(gateway: RunningGateway) -> None:
    # amount = 5 calls: 80% after the 4th call, 110% after the 6th, hard stop at 150% (7.5 calls)
    budget = add_budget(
        gateway,
        name="tiers",
        scope_type="key",
        scope_value=gateway.key_id,
        amount_nanos=5 * CALL_NANOS,
        tiers=[Tier("alert", 80), Tier("amber", 110), Tier("hard", 200)],
    )
    for _ in range(7):
        assert (
            httpx.post(f"{gateway.url}/v1/messages", json=body(), headers=headers(gateway.key)).status_code
            == 200
        )
    gateway.rows()
    events = gateway.gw.store.list_budget_events()
    assert [(e.tier, e.spend_nanos) for e in events] == [
        ("alert", 4 * CALL_NANOS),
        ("amber", 6 * CALL_NANOS),
    ]
    assert all(e.budget_id == budget.id for e in events)


def test_observation_mode_blocks_nothing_and_records_would_block(gateway: RunningGateway) -> None:
    add_budget(
        gateway,
        name="watch",
        scope_type="team",
        scope_value="platform",
        amount_nanos=CALL_NANOS,
        mode="observe",
    )
    codes = [
        httpx.post(f"{gateway.url}/v1/messages", json=body(), headers=headers(gateway.key)).status_code
        for _ in range(4)
    ]
    assert codes == [200] * 4
    notes = [r["budget_note"] for r in gateway.rows()]
    assert notes[0] is None and notes[-1] == "would_block:watch"
    report = gateway.gw.store.would_block()
    assert report[0].budget_note == "would_block:watch" and report[0].requests >= 2


def test_use_case_and_tag_budgets_cut_across_teams(gateway: RunningGateway) -> None:
    add_budget(
        gateway,
        name="agents",
        scope_type="tag",
        scope_value="use_case=research-agent",
        amount_nanos=CALL_NANOS * 100 // 150,
    )
    agent = headers(gateway.key, **{"x-spendgate-tags": "use_case=research-agent"})
    review = headers(gateway.key, **{"x-spendgate-tags": "use_case=chat"})
    assert (
        httpx.post(f"{gateway.url}/v1/messages", json=body(max_tokens=10), headers=agent).status_code == 200
    )
    assert (
        httpx.post(f"{gateway.url}/v1/messages", json=body(max_tokens=10), headers=agent).status_code == 429
    )
    assert (
        httpx.post(f"{gateway.url}/v1/messages", json=body(max_tokens=10), headers=review).status_code == 200
    )


def test_per_session_cap(gateway: RunningGateway) -> None:
    add_budget(
        gateway,
        name="per-session",
        scope_type="session",
        scope_value="*",
        amount_nanos=CALL_NANOS * 100 // 150,
    )
    one = headers(gateway.key, **{"x-claude-code-session-id": "s-1"})
    two = headers(gateway.key, **{"x-claude-code-session-id": "s-2"})
    post = lambda h: httpx.post(f"{gateway.url}/v1/messages", json=body(max_tokens=10), headers=h).status_code  # noqa: E731
    assert [post(one), post(one), post(two)] == [200, 429, 200]


def test_exemption_lifecycle(gateway: RunningGateway) -> None:
    store = gateway.gw.store
    add_budget(
        gateway, name="small", scope_type="team", scope_value="platform", amount_nanos=CALL_NANOS * 100 // 150
    )

    def post() -> httpx.Response:
        return httpx.post(
            f"{gateway.url}/v1/messages", json=body(max_tokens=10), headers=headers(gateway.key)
        )

    assert post().status_code == 200
    assert post().status_code == 429
    now = datetime.now(UTC)
    exemption = store.create_exemption(
        budget="small",
        amount_nanos=10 * CALL_NANOS,
        starts_at=iso(now - timedelta(minutes=1)),
        ends_at=iso(now + timedelta(hours=1)),
        reason="release week",
        requested_by="lead@acme",
    )
    gateway.gw.budgets.reload()
    assert post().status_code == 429  # requested, not approved
    with pytest.raises(Exception, match="requested it"):
        store.decide_exemption(exemption.id, approve=True, decided_by="lead@acme")
    approved = store.decide_exemption(exemption.id, approve=True, decided_by="vp@acme", note="ok for launch")
    gateway.gw.budgets.reload()
    assert post().status_code == 200
    assert (approved.status, approved.decided_by, approved.requested_by) == (
        "approved",
        "vp@acme",
        "lead@acme",
    )
    # Once the exemption's room is used up too, the 429 names it, so the arithmetic adds up.
    for _ in range(15):
        refused = post()
        if refused.status_code == 429:
            break
    assert refused.status_code == 429
    amount = CALL_NANOS * 100 // 150
    limit = amount * 150 // 100 + 10 * CALL_NANOS
    assert (
        f"hard limit ${format_usd(limit)} (150% of ${format_usd(amount)} + "
        f"${format_usd(10 * CALL_NANOS)} from exemption {exemption.id})"
    ) in refused.json()["error"]["message"]
    # An exemption whose window has passed gives no room.
    expired = store.create_exemption(
        budget="small",
        percent=500,
        starts_at=iso(now - timedelta(hours=3)),
        ends_at=iso(now - timedelta(hours=2)),
        reason="old",
        requested_by="lead@acme",
    )
    store.decide_exemption(expired.id, approve=True, decided_by="vp@acme")
    for e in store.list_exemptions():
        assert e.requested_at and e.reason


def test_rate_limits_per_key(gateway: RunningGateway) -> None:
    gateway.gw.store.set_key_limits(gateway.key_id, rpm=3, tpm=None, concurrency=None)
    gateway.gw.keyring.reload()
    codes = [
        httpx.post(f"{gateway.url}/v1/messages", json=body(max_tokens=10), headers=headers(gateway.key))
        for _ in range(4)
    ]
    assert [c.status_code for c in codes] == [200, 200, 200, 429]
    refused = codes[-1]
    assert int(refused.headers["retry-after"]) >= 1
    assert "3 requests per minute" in refused.json()["error"]["message"]
    with pytest.raises(anthropic.RateLimitError):
        anthropic.Anthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0).messages.create(
            model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )


def test_concurrency_limit(gateway: RunningGateway) -> None:
    gateway.gw.store.set_key_limits(gateway.key_id, rpm=None, tpm=None, concurrency=2)
    gateway.gw.keyring.reload()
    responses = asyncio.run(burst(gateway.url, gateway.key, 6, **{"x-fake-latency-ms": "300"}))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 2 and codes.count(429) == 4
    assert "2 concurrent requests" in next(r for r in responses if r.status_code == 429).text
    # slots come back when calls end
    assert (
        httpx.post(f"{gateway.url}/v1/messages", json=body(), headers=headers(gateway.key)).status_code == 200
    )


def test_month_boundary_in_a_non_utc_time_zone() -> None:
    budget = Budget(
        id="b", name="b", scope_type="team", scope_value="t", amount_nanos=1, timezone="America/Los_Angeles"
    )
    # 2026-12-01 07:30 UTC is still November 30th, 23:30 in Los Angeles (PST, UTC-8).
    late_november = window_for(budget, datetime(2026, 12, 1, 7, 30, tzinfo=UTC))
    assert late_november is not None and late_november.key == "2026-11"
    assert late_november.end_iso == "2026-12-01T08:00:00.000000Z"
    assert late_november.start_iso == "2026-11-01T07:00:00.000000Z"  # PDT (UTC-7) on November 1st
    december = window_for(budget, datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    assert december is not None and december.key == "2026-12"
    berlin_week = window_for(
        Budget(
            id="w",
            name="w",
            scope_type="team",
            scope_value="t",
            amount_nanos=1,
            period="week",
            timezone="Europe/Berlin",
        ),
        datetime(2026, 11, 29, 23, 30, tzinfo=UTC),  # Monday 00:30 in Berlin
    )
    assert berlin_week is not None and berlin_week.key == "2026-W49"


def test_month_boundary_seeds_only_this_months_spend(gateway: RunningGateway) -> None:
    from spendgate.models import LedgerRow

    # Spend late on Oct 31st in Los Angeles (Nov 1st, 06:00 UTC) belongs to October there.
    now = datetime.now(UTC)
    this_month = window_for(
        Budget(
            id="x",
            name="x",
            scope_type="team",
            scope_value="t",
            amount_nanos=1,
            timezone="America/Los_Angeles",
        ),
        now,
    )
    assert this_month is not None
    just_before = iso(this_month.start - timedelta(minutes=30))
    gateway.gw.store.insert_ledger_rows(
        [
            LedgerRow(
                request_id="old",
                provider="anthropic",
                endpoint="/v1/messages",
                started_at=just_before,
                ended_at=just_before,
                status_code=200,
                status="ok",
                use_case="untagged",
                team_id=gateway.team_id,
                cost_nanos=10**12,
            )
        ]
    )
    add_budget(
        gateway,
        name="la",
        scope_type="team",
        scope_value="platform",
        amount_nanos=10**9,
        timezone="America/Los_Angeles",
    )
    r = httpx.post(f"{gateway.url}/v1/messages", json=body(), headers=headers(gateway.key))
    assert r.status_code == 200  # last month's $1,000 does not count
