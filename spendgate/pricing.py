"""Prices as data: shipped defaults from `genai-prices`, overridable per model.

Each model's rates are resolved once a day and cached on the `Pricer`, so costing a
call is a handful of Decimal multiplications. Money leaves this module as integer
nano-dollars (1e-9 USD): exact for every listed price, summable in SQL.
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

NANOS_PER_USD = Decimal(1_000_000_000)
_MISSING = object()
_PER_MTOK = Decimal(1_000_000)
_FIELDS = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")


@dataclass(frozen=True, slots=True)
class Rate:
    """USD per million tokens; `tiers` are (threshold, rate): once total input tokens
    exceed a threshold, that rate applies to every token of the call (the providers' cliff)."""

    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...] = ()

    def at(self, total_input: int) -> Decimal:
        for start, price in reversed(self.tiers):
            if total_input > start:
                return price
        return self.base


@dataclass(frozen=True, slots=True)
class ModelPrice:
    ref: str
    input: Rate
    cache_write_5m: Rate
    cache_write_1h: Rate
    cache_read: Rate
    output: Rate
    web_search_per_k: Decimal = Decimal(0)
    batch_discount: Decimal = Decimal("0.5")


@dataclass(frozen=True, slots=True)
class Usage:
    """Provider usage normalised: `input_tokens` is UNCACHED input only (Anthropic's meaning)."""

    input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    web_search_requests: int = 0
    batch: bool = False

    @property
    def total_input(self) -> int:
        return (
            self.input_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
            + self.cache_read_tokens
        )


@dataclass(frozen=True, slots=True)
class Cost:
    nanos: int
    price_ref: str
    tier: str

    @property
    def usd(self) -> Decimal:
        return Decimal(self.nanos) / NANOS_PER_USD


def cost_of(price: ModelPrice, usage: Usage) -> Cost:
    return cost_at(price, usage, usage.total_input)


def cost_at(price: ModelPrice, usage: Usage, total_in: int) -> Cost:
    """`cost_of`, with the total input that picks the long-context rates given apart: for usage
    summed over calls that each had about that much input (one price band of a baseline)."""
    usd_mtok = (
        usage.input_tokens * price.input.at(total_in)
        + usage.cache_write_5m_tokens * price.cache_write_5m.at(total_in)
        + usage.cache_write_1h_tokens * price.cache_write_1h.at(total_in)
        + usage.cache_read_tokens * price.cache_read.at(total_in)
        + usage.output_tokens * price.output.at(total_in)
    )
    usd = usd_mtok / _PER_MTOK + usage.web_search_requests * price.web_search_per_k / 1000
    tier = "standard"
    if price.input.at(total_in) != price.input.base:
        tier = "long_context"
    if usage.batch:
        usd *= price.batch_discount
        tier = f"batch+{tier}" if tier != "standard" else "batch"
    nanos = int((usd * NANOS_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))
    return Cost(nanos=nanos, price_ref=price.ref, tier=tier)


def format_usd(nanos: int) -> str:
    """Exact dollars as a string, no float on the way: 12345678900 -> '12.3456789'."""
    text = format(Decimal(nanos) / NANOS_PER_USD, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class Pricer:
    """Resolves a (provider, model) to its prices: configured overrides first, then genai-prices."""

    def __init__(self, overrides_file: Path | None = None) -> None:
        self._overrides = load_overrides(overrides_file) if overrides_file else {}
        self._cache: dict[tuple[str, str, int], ModelPrice | None] = {}
        # importlib.metadata costs ~15 ms to import: paid by a Pricer, not by every importer of format_usd
        from importlib.metadata import version

        self._source = f"genai-prices {version('genai-prices')}"

    def price(self, provider: str, model: str, when: datetime | None = None) -> ModelPrice | None:
        # Keyed by UTC day number: prices change by date, and this runs on every call.
        day = int((when.timestamp() if when else time.time()) // 86400)
        key = (provider, model, day)
        found = self._cache.get(key, _MISSING)
        if found is _MISSING:
            moment = when or datetime.now(UTC)
            found = self._overrides.get(model) or self._from_genai_prices(provider, model, moment)
            self._cache[key] = found
        return found  # type: ignore[return-value]

    def preload(self) -> None:
        """Load genai-prices' data now rather than on the first call (a server does this at start)."""
        from genai_prices import data_snapshot

        data_snapshot.get_snapshot()

    def cheaper(self, provider: str, candidate: str, current: str) -> bool:
        """Is `candidate` cheaper than `current` (by output rate, then input rate)?"""
        a, b = self.price(provider, candidate), self.price(provider, current)
        if a is None or b is None:
            return False
        return (a.output.base, a.input.base) < (b.output.base, b.input.base)

    def _from_genai_prices(self, provider: str, model: str, moment: datetime) -> ModelPrice | None:
        from genai_prices import data_snapshot

        try:
            _, info = data_snapshot.get_snapshot().find_provider_model(model, None, provider, None)
        except LookupError:
            return None
        prices = info.get_prices(moment)
        inp = _rate(prices.input_mtok)
        if inp is None:
            return None
        cache_write = _rate(prices.cache_write_mtok) or inp
        return ModelPrice(
            ref=f"{self._source}: {provider}/{info.id}",
            input=inp,
            cache_write_5m=cache_write,
            cache_write_1h=_rate(getattr(prices, "cache_write_1h_mtok", None)) or cache_write,
            cache_read=_rate(prices.cache_read_mtok) or inp,
            output=_rate(prices.output_mtok) or Rate(Decimal(0)),
            web_search_per_k=_plain(getattr(prices, "web_searches_kcount", None)),
        )


def _rate(value: Any) -> Rate | None:
    if value is None:
        return None
    if isinstance(value, Decimal | int | float | str):
        return Rate(Decimal(str(value)))
    # genai-prices TieredPrices: .base and .tiers[].start/.price
    return Rate(Decimal(str(value.base)), tuple((int(t.start), Decimal(str(t.price))) for t in value.tiers))


def _plain(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return Decimal(str(getattr(value, "base", value)))


def load_overrides(path: Path) -> dict[str, ModelPrice]:
    """Read `[models."name"]` tables of USD-per-million rates (input, output, cache_read,
    cache_write_5m, cache_write_1h; optional long_context_threshold with long_context_* rates)."""
    # The file's schema is pydantic: loaded here, not by everything that imports format_usd (the CLI).
    from spendgate.config_files import checked
    from spendgate.pricing_file import OverridesFile

    data = checked(OverridesFile, tomllib.loads(path.read_text()), str(path))
    out: dict[str, ModelPrice] = {}
    for model, table in data.get("models", {}).items():
        if "input" not in table or "output" not in table:
            raise ValueError(f"{path}: model {model!r} needs at least input and output prices")
        inp = Decimal(str(table["input"]))
        defaults = {
            "input": inp,
            "output": Decimal(str(table["output"])),
            "cache_read": inp * Decimal("0.1"),
            "cache_write_5m": inp * Decimal("1.25"),
            "cache_write_1h": inp * 2,
        }
        threshold = table.get("long_context_threshold")
        rates = {}
        for name in _FIELDS:
            base = Decimal(str(table[name])) if name in table else defaults[name]
            tiers: tuple[tuple[int, Decimal], ...] = ()
            if threshold is not None and f"long_context_{name}" in table:
                tiers = ((int(threshold), Decimal(str(table[f"long_context_{name}"]))),)
            rates[name] = Rate(base, tiers)
        out[model] = ModelPrice(
            ref=f"override: {model} ({path.name})",
            input=rates["input"],
            cache_write_5m=rates["cache_write_5m"],
            cache_write_1h=rates["cache_write_1h"],
            cache_read=rates["cache_read"],
            output=rates["output"],
            web_search_per_k=Decimal(str(table.get("web_search_per_k", 10))),
        )
    return out
