"""cost_of in integers gives the nano-dollar that Decimal arithmetic gives, for every price we ship."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from spendgate.pricing import ModelPrice, Pricer, Rate, Usage, cost_of


def decimal_cost(price: ModelPrice, usage: Usage, total_in: int | None = None) -> tuple[int, str]:
    """The reference: the price sheet's arithmetic, in Decimals (how cost_of used to compute it)."""
    total_in = usage.total_input if total_in is None else total_in
    usd_mtok = (
        usage.input_tokens * price.input.at(total_in)
        + usage.cache_write_5m_tokens * price.cache_write_5m.at(total_in)
        + usage.cache_write_1h_tokens * price.cache_write_1h.at(total_in)
        + usage.cache_read_tokens * price.cache_read.at(total_in)
        + usage.output_tokens * price.output.at(total_in)
    )
    usd = usd_mtok / Decimal(1_000_000) + usage.web_search_requests * price.web_search_per_k / 1000
    tier = "standard" if price.input.at(total_in) == price.input.base else "long_context"
    if usage.batch:
        usd *= price.batch_discount
        tier = f"batch+{tier}" if tier != "standard" else "batch"
    return int((usd * Decimal(1_000_000_000)).to_integral_value(rounding=ROUND_HALF_EVEN)), tier


def shipped_prices() -> list[ModelPrice]:
    from genai_prices import data_snapshot

    pricer = Pricer()
    found = []
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            price = pricer.price(provider.id, model.id)
            if price is not None:
                found.append(price)
    return found


def usages(rng: random.Random, count: int) -> list[Usage]:
    out = [Usage(), Usage(input_tokens=1), Usage(output_tokens=1), Usage(cache_read_tokens=3, batch=True)]
    for _ in range(count):
        scale = rng.choice((10, 1_000, 300_000, 1_000_000_000))
        out.append(
            Usage(
                input_tokens=rng.randrange(scale),
                cache_write_5m_tokens=rng.randrange(scale) if rng.random() < 0.3 else 0,
                cache_write_1h_tokens=rng.randrange(scale) if rng.random() < 0.2 else 0,
                cache_read_tokens=rng.randrange(scale) if rng.random() < 0.4 else 0,
                output_tokens=rng.randrange(scale),
                web_search_requests=rng.randrange(5) if rng.random() < 0.2 else 0,
                batch=rng.random() < 0.3,
            )
        )
    return out


def test_every_shipped_price_costs_exactly_what_decimals_say() -> None:
    prices = shipped_prices()
    assert len(prices) > 100  # the whole price data, not a sample of it
    rng = random.Random(18)
    for price in prices:
        for usage in usages(rng, 40):
            cost = cost_of(price, usage)
            assert (cost.nanos, cost.tier) == decimal_cost(price, usage), (price.ref, usage)
            assert cost.price_ref == price.ref


def test_tiers_halves_and_odd_decimals_round_like_decimals() -> None:
    # Tiers that start at different thresholds per field, rates with many decimal places, a
    # discount that is not a half, and usages that land exactly on half a nano-dollar.
    price = ModelPrice(
        ref="test",
        input=Rate(Decimal("3.0000001"), ((200_000, Decimal("6.5")), (1_000_000, Decimal("9.25")))),
        cache_write_5m=Rate(Decimal("3.75"), ((500_000, Decimal("7.5")),)),
        cache_write_1h=Rate(Decimal("6")),
        cache_read=Rate(Decimal("0.3"), ((200_000, Decimal("0.3")),)),  # a tier at the same rate
        output=Rate(Decimal("15.0000005"), ((200_000, Decimal("22.5")),)),
        web_search_per_k=Decimal("10.125"),
        batch_discount=Decimal("0.35"),
    )
    rng = random.Random(7)
    cases = usages(rng, 3000)
    edges = (1, 3, 5, 199_999, 200_000, 200_001)
    cases += [Usage(input_tokens=n, batch=b) for n in edges for b in (False, True)]
    cases += [Usage(output_tokens=n) for n in range(1, 40)]
    cases += [Usage(input_tokens=t, cache_write_5m_tokens=500_001 - t) for t in (0, 1, 200_000, 200_001)]
    for usage in cases:
        cost = cost_of(price, usage)
        assert (cost.nanos, cost.tier) == decimal_cost(price, usage), usage
        band = rng.choice((0, 200_000, 200_001, 500_001, 1_000_001, rng.randrange(2_000_000)))
        cost = cost_of(price, usage, band)  # usage summed over calls of about `band` input each
        assert (cost.nanos, cost.tier) == decimal_cost(price, usage, band), (usage, band)


@pytest.mark.parametrize("rate", ["0.0375", "1E+1", "12", "0.000000001"])
def test_any_decimal_rate_is_exact(rate: str) -> None:
    flat = Rate(Decimal(rate))
    price = ModelPrice("flat", flat, flat, flat, flat, flat)
    for tokens in (1, 7, 999_999, 123_456_789):
        usage = Usage(input_tokens=tokens, output_tokens=tokens, batch=tokens % 2 == 1)
        assert (cost_of(price, usage).nanos, cost_of(price, usage).tier) == decimal_cost(price, usage)


def test_price_overrides_file_cost_exactly(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."house-model"]\ninput = 1.1\noutput = 4.4\nlong_context_threshold = 100000\n'
        "long_context_input = 2.2\nlong_context_output = 8.8\nweb_search_per_k = 12.5\n"
    )
    price = Pricer(path).price("anthropic", "house-model")
    assert price is not None
    for usage in usages(random.Random(3), 500):
        cost = cost_of(price, usage)
        assert (cost.nanos, cost.tier) == decimal_cost(price, usage), usage


def test_remembered_prices_are_the_prices_of_the_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """The call path's memo (today's prices, by provider and model) answers as a fresh lookup at
    the same moment would, across day boundaries and when the memo starts over."""
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    asked = [(p.id, m.id) for p in snapshot.providers[:6] for m in p.models[:15]]
    asked += [("anthropic", "no-such-model"), ("nobody", "claude-haiku-4-5")]
    rng = random.Random(7)
    pricer = Pricer()
    pricer.MAX_REMEMBERED = 50  # small: the memo starts over many times
    midnight = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    moments = [midnight - 0.001, midnight, midnight + 86_399.999, midnight + 86_400, midnight - 400 * 86_400]
    for _ in range(3000):
        now = rng.choice(moments) + rng.choice((0, 0.5))
        provider, model = rng.choice(asked)
        monkeypatch.setattr(time, "time", lambda now=now: now)
        expected = Pricer().price(provider, model, datetime.fromtimestamp(now, UTC))
        assert pricer.price(provider, model) == expected, (provider, model, now)
        assert pricer.price(provider, model, datetime.fromtimestamp(now, UTC)) == expected
        assert len(pricer._today) <= 50 and len(pricer._by_day) <= 50
