"""What the traffic would have cost on one model: `spendgate savings --baseline MODEL` and the
finance report's "against everything on Opus" (the brief's 68% is this comparison).

Each call's tokens (uncached input, cache writes and reads, output, web searches) are priced at
the baseline model's rates of the call's UTC day, batch calls at its batch discount, and a call whose
total input passes one of the model's long-context thresholds at that tier's rates, as it would have
been billed. Calls are summed per day, batch flag and input band before pricing, so a month of
traffic is priced in a few hundred multiplications; the rounding is per bucket rather than per call
(at most half a nano-dollar a bucket, none when the rates are whole nano-dollars per token, as every
listed one is). It assumes the baseline would have used the same tokens: tokenizers and answer
lengths differ between models, so read it as a price comparison, not a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from spendgate.pricing import ModelPrice, Pricer, Usage, cost_of
from spendgate.store.spend import SpendStore, UsageBucket

REQUESTED = "requested"  # the counterfactual on the models asked for (ledger column)
DEFAULT_MODEL = "claude-opus-4-6"  # the brief's "vs. Opus baseline": the finance report's comparison
# Where a baseline model is looked up, in order (the traffic itself may come from any of them).
PROVIDERS = ("anthropic", "openai", "bedrock", "vertex")


@dataclass(frozen=True, slots=True)
class Baseline:
    """One model every call is compared with, and where its prices come from."""

    model: str
    pricer: Pricer


@dataclass(frozen=True, slots=True)
class BaselineCost:
    id: str | None
    name: str | None
    requests: int
    routed_requests: int
    cost_nanos: int  # what the calls cost
    baseline_nanos: int  # what they would have cost on the baseline model


def default_baseline() -> Baseline:
    return Baseline(DEFAULT_MODEL, Pricer())


def price_of(pricer: Pricer, model: str, when: datetime | None = None) -> ModelPrice | None:
    for provider in PROVIDERS:
        price = pricer.price(provider, model, when)
        if price is not None:
            return price
    return None


def thresholds(price: ModelPrice) -> set[int]:
    """The total-input thresholds past which one of the model's rates changes."""
    rates = (price.input, price.cache_write_5m, price.cache_write_1h, price.cache_read, price.output)
    return {start for rate in rates for start, _ in rate.tiers}


def baseline_costs(
    store: SpendStore, by: str, since: str | None, until: str | None, model: str, pricer: Pricer
) -> list[BaselineCost]:
    """Per savings group: what its calls cost, and would have cost on `model`."""
    current = price_of(pricer, model)
    if current is None:
        raise ValueError(f"--baseline: no price is known for model {model!r} (check the name)")
    bands = tuple(sorted(thresholds(current)))
    buckets = store.usage_buckets(by, since, until, bands)
    prices = {day: price_of(pricer, model, _day(day)) for day in {b.day for b in buckets}}
    # A threshold that only an older price had: bucket again with every threshold of the period.
    every = tuple(sorted(set(bands).union(*(thresholds(p) for p in prices.values() if p is not None))))
    if every != bands:
        bands, buckets = every, store.usage_buckets(by, since, until, every)
    groups: dict[str | None, list[int]] = {}
    names: dict[str | None, str | None] = {}
    for bucket in buckets:
        price = prices.get(bucket.day) or current  # a day before the price data knew the model
        sums = groups.setdefault(bucket.id, [0, 0, 0, 0])
        names[bucket.id] = bucket.name
        sums[0] += bucket.requests
        sums[1] += bucket.routed_requests
        sums[2] += bucket.cost_nanos
        sums[3] += cost_of(price, _usage(bucket), _band_input(bands, bucket.band)).nanos
    return [BaselineCost(key, names[key], *sums) for key, sums in groups.items()]


def _usage(bucket: UsageBucket) -> Usage:
    return Usage(
        input_tokens=bucket.input_tokens,
        cache_write_5m_tokens=bucket.cache_write_5m_tokens,
        cache_write_1h_tokens=bucket.cache_write_1h_tokens,
        cache_read_tokens=bucket.cache_read_tokens,
        output_tokens=bucket.output_tokens,
        web_search_requests=bucket.web_search_requests,
        batch=bucket.batch,
    )


def _band_input(bands: tuple[int, ...], band: int) -> int:
    """A total input inside the band: what picks its rates (band 0: below every threshold)."""
    return bands[band - 1] + 1 if band else 0


def _day(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC, hour=12)
