"""Prices as data: shipped defaults from `genai-prices`, overridable per model.

Each model's rates are resolved once a day and cached on the `Pricer`. Rates are Decimals;
each `ModelPrice` also keeps them as integers over one power of ten, so costing a call is a
handful of integer multiplications and one rounding division, exact to the nano-dollar (the
same result as Decimal arithmetic, a fifth of the time). Money leaves this module as integer
nano-dollars (1e-9 USD): exact for every listed price, summable in SQL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

NANOS_PER_USD = Decimal(1_000_000_000)
_MISSING = object()
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


class _Scaled(NamedTuple):
    """A ModelPrice in integers: every Decimal times `denominator` (a power of ten), exactly."""

    denominator: int
    bases: tuple[int, int, int, int, int]  # input, cache_write_5m, cache_write_1h, cache_read, output
    tiers: tuple[tuple[int, tuple[int, int, int, int, int]], ...]  # (threshold, the five rates past it)
    web_search_per_k: int
    batch_discount: int


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
    scaled: _Scaled = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scaled", _scale(self))


def _scale(price: ModelPrice) -> _Scaled:
    rates = (price.input, price.cache_write_5m, price.cache_write_1h, price.cache_read, price.output)
    values = [price.web_search_per_k, price.batch_discount]
    for rate in rates:
        values.append(rate.base)
        values.extend(value for _, value in rate.tiers)
    places = max(0, *(-int(v.as_tuple().exponent) for v in values))
    denominator = 10**places

    def scaled(value: Decimal) -> int:
        whole = value * denominator
        assert whole == int(whole), value
        return int(whole)

    # Rate.at() per threshold: past each, the rate of the highest tier it exceeds, per field.
    thresholds = sorted({start for rate in rates for start, _ in rate.tiers})
    tiers = tuple(
        (start, _five(tuple(scaled(rate.at(start + 1)) for rate in rates))) for start in thresholds
    )
    return _Scaled(
        denominator,
        _five(tuple(scaled(rate.base) for rate in rates)),
        tiers,
        scaled(price.web_search_per_k),
        scaled(price.batch_discount),
    )


def _five(values: tuple[int, ...]) -> tuple[int, int, int, int, int]:
    a, b, c, d, e = values
    return a, b, c, d, e


# A NamedTuple's class call runs its generated Python __new__ (a frame, the arguments bound by
# name); tuple.__new__ with every value in field order builds the same tuple in half the
# instructions. For the values built on every call: Usage, Cost, and the meter's results.
new_tuple = tuple.__new__


class Usage(NamedTuple):
    """Provider usage normalised: `input_tokens` is UNCACHED input only (Anthropic's meaning).

    A NamedTuple (immutable; `_replace` for a changed copy): one or two are built per call, in a
    third of a frozen dataclass's time."""

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


class Cost(NamedTuple):  # per call, like Usage
    nanos: int
    price_ref: str
    tier: str

    @property
    def usd(self) -> Decimal:
        return Decimal(self.nanos) / NANOS_PER_USD


def cost_of(price: ModelPrice, usage: Usage, total_in: int | None = None) -> Cost:
    """What `usage` costs at `price`, rounded half to even to the nano-dollar. `total_in`, the
    total input that picks the long-context rates, is the usage's own unless given (usage summed
    over calls that each had about that much input: one price band of a baseline)."""
    # Unpacked once: a NamedTuple's fields by name are a descriptor call each (this runs per call).
    input_tokens, write_5m, write_1h, read, output, _, searches, batch = usage
    if total_in is None:
        total_in = input_tokens + write_5m + write_1h + read
    # _Scaled unpacked once too (denominator, bases, tiers, web_search_per_k, batch_discount).
    scale, bases, tiers, per_k, discount = price.scaled
    rates = bases
    tier = "standard"
    if tiers:
        for start, past in tiers:  # ascending: the last threshold exceeded wins
            if total_in > start:
                rates = past
        if rates[0] != bases[0]:
            tier = "long_context"
    input_rate, write_5m_rate, write_1h_rate, read_rate, output_rate = rates
    # USD per MTok x tokens x 1000 is nano-dollars; searches are priced per thousand.
    numerator = (
        input_tokens * input_rate
        + write_5m * write_5m_rate
        + write_1h * write_1h_rate
        + read * read_rate
        + output * output_rate
    ) * 1000
    if searches:
        numerator += searches * per_k * 1_000_000
    denominator = scale
    if batch:
        numerator *= discount
        denominator *= scale
        tier = f"batch+{tier}" if tier != "standard" else "batch"
    nanos, rest = divmod(numerator, denominator)
    if 2 * rest > denominator or (2 * rest == denominator and nanos & 1):
        nanos += 1
    return new_tuple(Cost, (nanos, price.ref, tier))


def format_usd(nanos: int) -> str:
    """Exact dollars as a string, no float on the way: 12345678900 -> '12.3456789'."""
    text = format(Decimal(nanos) / NANOS_PER_USD, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class Pricer:
    """Resolves a (provider, model) to its prices: configured overrides first, then genai-prices."""

    # Prices remembered per memo; past that it starts over (model names are the client's to pick).
    MAX_REMEMBERED = 4096

    def __init__(self, overrides_file: Path | None = None) -> None:
        self._overrides = load_overrides(overrides_file) if overrides_file else {}
        # The call path asks for today's prices: remembered by (provider, model) until the UTC day
        # ends, so a call computes no day number and builds no dated key. Other days' prices (a
        # ledger export, a baseline) are remembered by day.
        self._today: dict[tuple[str, str], ModelPrice | None] = {}
        self._today_ends = 0.0  # time.time() when the day `_today` holds ends
        self._by_day: dict[tuple[str, str, int], ModelPrice | None] = {}
        # importlib.metadata costs ~15 ms to import: paid by a Pricer, not by every importer of format_usd
        from importlib.metadata import version

        self._source = f"genai-prices {version('genai-prices')}"

    def price(self, provider: str, model: str, when: datetime | None = None) -> ModelPrice | None:
        """The prices of `model` on the UTC day of `when` (default: now); None: it has none."""
        if when is not None:
            return self._on_day(provider, model, when)
        now = time.time()
        if now >= self._today_ends:  # a new day: yesterday's prices may not hold
            self._today.clear()
            self._today_ends = (now // 86400 + 1) * 86400
        found = self._today.get((provider, model), _MISSING)
        if found is _MISSING:
            found = self._resolve(provider, model, datetime.fromtimestamp(now, UTC))
            _remember(self._today, (provider, model), found, self.MAX_REMEMBERED)
        return found  # type: ignore[return-value]

    def _on_day(self, provider: str, model: str, when: datetime) -> ModelPrice | None:
        key = (provider, model, int(when.timestamp() // 86400))
        found = self._by_day.get(key, _MISSING)
        if found is _MISSING:
            found = self._resolve(provider, model, when)
            _remember(self._by_day, key, found, self.MAX_REMEMBERED)
        return found  # type: ignore[return-value]

    def _resolve(self, provider: str, model: str, moment: datetime) -> ModelPrice | None:
        return self._overrides.get(model) or self._from_genai_prices(provider, model, moment)

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


def _remember(memo: dict[Any, ModelPrice | None], key: Any, found: ModelPrice | None, limit: int) -> None:
    if len(memo) >= limit:
        memo.clear()
    memo[key] = found


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
    # The file's schema (pydantic) and the TOML parser are loaded here, not by everything that
    # imports format_usd (the CLI).
    import tomllib

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
