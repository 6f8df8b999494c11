"""`spendgate savings --baseline MODEL` (issue #16): what the traffic would have cost on one model,
priced per call from its tokens at that day's price, checked against each row priced on its own
(`cost_of`), on SQLite and PostgreSQL, through the daily rollups (a model without long-context
rates) and the raw ledger (one with them)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spendgate.admin.routing_service import savings_report
from spendgate.cli import build_app
from spendgate.models import LedgerRow
from spendgate.pricing import NANOS_PER_USD, Pricer, Usage, cost_of
from spendgate.routing.baseline import price_of, thresholds
from spendgate.store import open_store
from spendgate.store.base import Store

TEAMS = ("platform", "research")


def ledger(store: Store, rng: random.Random, n: int) -> list[LedgerRow]:
    ids = {name: store.create_team("acme", name, "CC").id for name in TEAMS}
    rows = []
    for i in range(n):
        day = 1 + i % 3
        batch = i % 7 == 0
        long_context = i % 5 == 0  # past 200K input tokens: sonnet-4-5's long-context rates
        model = rng.choice(["claude-haiku-4-5", "claude-sonnet-4-6"])
        rows.append(
            LedgerRow(
                request_id=f"r{i}",
                provider="anthropic",
                endpoint="/v1/messages",
                started_at=f"2026-11-0{day}T1{i % 10}:00:00.000000Z",
                ended_at=f"2026-11-0{day}T1{i % 10}:00:01.000000Z",
                status_code=200,
                status="ok",
                use_case=rng.choice(["code-review", "chat"]),
                team_id=ids[TEAMS[i % 2]],
                requested_model=model,
                upstream_model=model,
                input_tokens=rng.randint(0, 5000) + (250_000 if long_context else 0),
                cache_write_5m_tokens=rng.randint(0, 2000),
                cache_write_1h_tokens=rng.randint(0, 500),
                cache_read_tokens=rng.randint(0, 40_000),
                output_tokens=rng.randint(1, 3000),
                cost_nanos=rng.randint(1, 10**7),
                pricing_tier="batch" if batch else "standard",
            )
        )
    store.insert_ledger_rows(rows)
    return rows


def by_hand(rows: list[LedgerRow], model: str, pricer: Pricer, team_ids: dict[str, str]) -> dict[str, int]:
    """Each row priced on its own, at its day's price: the definition the report must meet."""
    out: dict[str, int] = {}
    for r in rows:
        day = datetime.fromisoformat(r.started_at.replace("Z", "+00:00")).astimezone(UTC)
        price = price_of(pricer, model, day)
        assert price is not None
        usage = Usage(
            r.input_tokens,
            r.cache_write_5m_tokens,
            r.cache_write_1h_tokens,
            r.cache_read_tokens,
            r.output_tokens,
            batch=(r.pricing_tier or "").startswith("batch"),
        )
        team = next(name for name, i in team_ids.items() if i == r.team_id)
        out[team] = out.get(team, 0) + cost_of(price, usage).nanos
    return out


@pytest.mark.parametrize("model", ["claude-opus-4-6", "claude-sonnet-4-5"])
def test_baseline_prices_every_call_as_it_would_have_been_billed(database_url: str, model: str) -> None:
    store = open_store(database_url)
    store.migrate()
    store.create_org("acme")
    pricer = Pricer()
    price = price_of(pricer, model)
    assert price is not None and bool(thresholds(price)) == (model == "claude-sonnet-4-5")
    rows = ledger(store, random.Random(16), 120)
    team_ids = {name: team_id for team_id, name in store.names("team").items()}
    report = {r["team"]: r for r in savings_report(store, "team", "2026-11-01", "2026-11-04", model, pricer)}
    expected = by_hand(rows, model, pricer, team_ids)
    for team in TEAMS:
        got = report[team]
        assert _nanos(got["counterfactual_usd"]) == expected[team], team
        assert _nanos(got["cost_usd"]) == sum(r.cost_nanos for r in rows if r.team_id == team_ids[team])
        assert got["requests"] == 60 and got["baseline"] == model
    # `requested` is the ledger's own counterfactual, as before
    plain = savings_report(store, "team", "2026-11-01", "2026-11-04")
    assert all(r["baseline"] == "requested" and r["savings_usd"] == "0" for r in plain)
    store.close()


def test_a_baseline_by_hand(tmp_path: Path) -> None:
    """1M input + 100K output tokens on Opus 4.6 ($5 / $25 per MTok, pricing.md): $7.50; as a
    Message Batch, half."""
    url = f"sqlite:///{tmp_path}/s.db"
    store = open_store(url)
    store.migrate()
    store.create_org("acme")
    team = store.create_team("acme", "platform", "CC")
    common = dict(
        provider="anthropic",
        endpoint="/v1/messages",
        ended_at="2026-11-02T10:00:01.000000Z",
        status_code=200,
        status="ok",
        use_case="chat",
        team_id=team.id,
        requested_model="claude-haiku-4-5",
        input_tokens=1_000_000,
        output_tokens=100_000,
        cost_nanos=1_500_000_000,  # on Haiku 4.5: $1 + $0.50
    )
    store.insert_ledger_rows(
        [
            LedgerRow(request_id="a", started_at="2026-11-02T10:00:00.000000Z", **common),  # type: ignore[arg-type]
            LedgerRow(
                request_id="b", started_at="2026-11-02T11:00:00.000000Z", pricing_tier="batch", **common
            ),  # type: ignore[arg-type]
        ]
    )
    store.close()
    runner = CliRunner(env={"SPENDGATE_DATABASE_URL": url})
    result = runner.invoke(build_app(), ["savings", "--baseline", "claude-opus-4-6", "--format", "json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert (row["cost_usd"], row["counterfactual_usd"], row["savings_usd"]) == ("3", "11.25", "8.25")
    assert row["savings_pct"] == "73.33" and row["baseline"] == "claude-opus-4-6"
    text = runner.invoke(build_app(), ["savings", "--baseline", "claude-opus-4-6"]).stdout
    assert "against claude-opus-4-6" in text
    unknown = runner.invoke(build_app(), ["savings", "--baseline", "no-such-model"])
    assert unknown.exit_code == 1 and "no price is known for model 'no-such-model'" in unknown.stderr


def _nanos(usd: str) -> int:
    from decimal import Decimal

    return int(Decimal(usd) * NANOS_PER_USD)


def test_the_finance_report_states_the_saving_both_ways(tmp_path: Path) -> None:
    """One routed call (Opus asked, Haiku used) and one unrouted Sonnet call in October."""
    from spendgate.reports import data
    from spendgate.reports.produce import produce
    from spendgate.routing.baseline import Baseline

    pytest.importorskip("matplotlib")
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    store.migrate()
    store.create_org("acme")
    team = store.create_team("acme", "platform", "CC")
    tokens = dict(input_tokens=200_000, output_tokens=20_000)  # Opus 4.6: $1 + $0.50 = $1.50
    common = dict(
        provider="anthropic",
        endpoint="/v1/messages",
        status_code=200,
        status="ok",
        use_case="chat",
        team_id=team.id,
        **tokens,
    )
    store.insert_ledger_rows(
        [
            LedgerRow(
                request_id="routed",
                started_at="2026-10-05T10:00:00.000000Z",
                ended_at="2026-10-05T10:00:01.000000Z",
                requested_model="claude-opus-4-6",
                upstream_model="claude-haiku-4-5",
                route_rule="cheap",
                cost_nanos=300_000_000,
                counterfactual_cost_nanos=1_500_000_000,
                **common,
            ),  # type: ignore[arg-type]
            LedgerRow(
                request_id="plain",
                started_at="2026-10-06T10:00:00.000000Z",
                ended_at="2026-10-06T10:00:01.000000Z",
                requested_model="claude-sonnet-4-6",
                upstream_model="claude-sonnet-4-6",
                cost_nanos=900_000_000,
                counterfactual_cost_nanos=900_000_000,
                **common,
            ),  # type: ignore[arg-type]
        ]
    )
    now = datetime(2026, 11, 1, 7, tzinfo=UTC)
    report = data.finance_report(store, "2026-10", now, Baseline("claude-opus-4-6", Pricer()))
    savings = report.savings
    assert savings is not None
    assert (savings.cost_nanos, savings.counterfactual_nanos, savings.saved_nanos) == (
        1_200_000_000,
        2_400_000_000,
        1_200_000_000,
    )
    assert (savings.baseline_model, savings.baseline_nanos, savings.baseline_saved_nanos) == (
        "claude-opus-4-6",
        3_000_000_000,
        1_800_000_000,
    )
    html = produce(store, "finance", month="2026-10", formats=("html",), now=now).outputs[0].content.decode()
    assert "on the models asked for they would have cost $2.40: $1.20 saved" in html
    assert "Against claude-opus-4-6 for every call" in html and "$3.00: $1.80 (60.0%) less" in html
    store.close()
