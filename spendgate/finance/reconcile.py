"""Reconciliation: what the gateway metered against what the provider billed, and which provider
keys carry traffic that never went through the gateway. Pure functions over store rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from spendgate.finance.provider_usage import NO_KEY_SPLIT, parse_date
from spendgate.pricing import format_usd
from spendgate.store.finance import MeteredSpend, ProviderUsage, ReconcileStore

_CENTI = Decimal("0.01")


@dataclass(frozen=True)
class Line:
    """One day, provider and model (or one provider's total when day is '')."""

    day: str
    provider: str
    model: str
    metered_requests: int
    metered_nanos: int
    billed_nanos: int | None  # None: the provider reported no cost for it

    @property
    def coverage_pct(self) -> Decimal | None:
        return coverage(self.metered_nanos, self.billed_nanos)

    @property
    def difference_nanos(self) -> int | None:
        """Billed minus metered: positive is spend the gateway did not see."""
        return None if self.billed_nanos is None else self.billed_nanos - self.metered_nanos

    def as_json(self) -> dict[str, Any]:
        pct = self.coverage_pct
        diff = self.difference_nanos
        return {
            **({"day": self.day} if self.day else {}),
            "provider": self.provider,
            **({"model": self.model} if self.day else {}),
            "metered_requests": self.metered_requests,
            "metered_usd": format_usd(self.metered_nanos),
            "billed_usd": None if self.billed_nanos is None else format_usd(self.billed_nanos),
            "coverage_pct": None if pct is None else str(pct),
            "difference_usd": None if diff is None else format_usd(diff),
        }


@dataclass(frozen=True)
class KeyLine:
    """One provider key id as the provider reports it."""

    provider: str
    api_key_id: str  # '' for usage the provider reports without a key (its console, say)
    days: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    billed_nanos: int | None
    gateway: bool

    @property
    def bypass(self) -> bool:
        return not self.gateway

    def as_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "api_key_id": self.api_key_id,
            "days": self.days,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "billed_usd": None if self.billed_nanos is None else format_usd(self.billed_nanos),
            "gateway": self.gateway,
            "bypass": self.bypass,
        }


@dataclass(frozen=True)
class Reconciliation:
    since: str
    until: str
    lines: list[Line]
    totals: list[Line]
    keys: list[KeyLine]
    gateway_keys_known: bool

    @property
    def bypass_keys(self) -> list[KeyLine]:
        return [k for k in self.keys if k.bypass]

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "lines": [line.as_json() for line in self.lines],
            "totals": [line.as_json() for line in self.totals],
            "keys": [k.as_json() for k in self.keys],
            "bypass_keys": [f"{k.provider}:{k.api_key_id}" for k in self.bypass_keys],
            "gateway_keys_configured": self.gateway_keys_known,
        }


def coverage(metered: int, billed: int | None) -> Decimal | None:
    """metered ÷ billed as a percentage rounded to 0.01 (half-even); None when billed is unknown or 0."""
    if not billed:
        return None
    return (Decimal(metered) * 100 / Decimal(billed)).quantize(_CENTI, rounding=ROUND_HALF_EVEN)


def parse_key_ids(text: str | None) -> frozenset[str]:
    """The comma-separated SPENDGATE_GATEWAY_PROVIDER_KEY_IDS value."""
    return frozenset(part.strip() for part in (text or "").split(",") if part.strip())


def day_window(since: str, until: str | None, today: date) -> tuple[str, str]:
    """[since, until) as YYYY-MM-DD; until defaults to tomorrow (today included)."""
    start = parse_date(since)
    end = parse_date(until) if until else today + timedelta(days=1)
    if end <= start:
        raise ValueError("--until must be after --since")
    return start.isoformat(), end.isoformat()


def _add(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else a + b


def reconcile(
    metered: Iterable[MeteredSpend],
    imported: Iterable[ProviderUsage],
    gateway_key_ids: Iterable[str],
    since: str,
    until: str,
) -> Reconciliation:
    """Compare `metered_by_day_model` rows with `provider_usage_rows` rows."""
    gateway = frozenset(gateway_key_ids)
    groups: dict[tuple[str, str, str], list[Any]] = {}  # -> [requests, metered, billed]
    for m in metered:
        g = groups.setdefault((m.day, m.provider, m.model), [0, 0, None])
        g[0] += m.metered_requests
        g[1] += m.cost_nanos
    keys: dict[tuple[str, str], dict[str, Any]] = {}
    for row in imported:
        g = groups.setdefault((row.day, row.provider, row.model), [0, 0, None])
        g[2] = _add(g[2], row.cost_nanos)
        if row.api_key_id == NO_KEY_SPLIT:
            continue
        k = keys.setdefault(
            (row.provider, row.api_key_id),
            {"days": set(), "input": 0, "output": 0, "read": 0, "write": 0, "billed": None},
        )
        k["days"].add(row.day)
        k["input"] += row.input_tokens
        k["output"] += row.output_tokens
        k["read"] += row.cache_read_tokens
        k["write"] += row.cache_write_tokens
        k["billed"] = _add(k["billed"], row.cost_nanos)
    lines = [Line(day, p, model, *values) for (day, p, model), values in sorted(groups.items())]
    return Reconciliation(
        since=since,
        until=until,
        lines=lines,
        totals=_totals(lines),
        keys=[
            KeyLine(
                provider=p,
                api_key_id=key_id,
                days=len(k["days"]),
                input_tokens=k["input"],
                output_tokens=k["output"],
                cache_read_tokens=k["read"],
                cache_write_tokens=k["write"],
                billed_nanos=k["billed"],
                gateway=key_id in gateway,
            )
            for (p, key_id), k in sorted(keys.items())
        ],
        gateway_keys_known=bool(gateway),
    )


def _totals(lines: Sequence[Line]) -> list[Line]:
    out: dict[str, list[Any]] = {}
    for line in lines:
        t = out.setdefault(line.provider, [0, 0, None])
        t[0] += line.metered_requests
        t[1] += line.metered_nanos
        t[2] = _add(t[2], line.billed_nanos)
    return [Line("", provider, "", *values) for provider, values in sorted(out.items())]


def reconcile_days(store: ReconcileStore, since: str, until: str, gateway_keys: str | None) -> Reconciliation:
    """`reconcile` over the store's metered and imported rows for UTC days [since, until), with the
    gateway's own provider key ids as SPENDGATE_GATEWAY_PROVIDER_KEY_IDS spells them."""
    return reconcile(
        store.metered_by_day_model(since, until),
        store.provider_usage_rows(since, until),
        parse_key_ids(gateway_keys),
        since,
        until,
    )
