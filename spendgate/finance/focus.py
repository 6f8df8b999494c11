"""Chargeback in FinOps FOCUS 1.2: one row per charge, with CSV and Parquet writers.

A charge is one (day, cost center, team, use case, provider, model, token type) at one unit price.
The input is the daily rollup (`Store.chargeback_rows`: sums per day, attribution, model, pricing
tier and price). Each line's `cost_nanos` is split over its token types in proportion to what each
type cost at the line's prices (`Pricer().price(provider, upstream_model, day)` rates at the line's
pricing tier x tokens); parts are rounded to the nano-dollar and the rounding remainder goes on the
output line (or the largest line when there is no output), so the parts of a line sum exactly to its
cost and the export's BilledCost total equals the ledger's total. Unit prices are per token (per
request for web search).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from spendgate.extras import require
from spendgate.inference.share import source_kind
from spendgate.pricing import NANOS_PER_USD, ModelPrice, Pricer, Rate, format_usd

# (token type, ledger column, ModelPrice rate attribute or None for web search, SkuMeter)
TOKEN_TYPES: tuple[tuple[str, str, str | None, str], ...] = (
    ("input", "input_tokens", "input", "Input Tokens"),
    ("cache_write_5m", "cache_write_5m_tokens", "cache_write_5m", "Cache Write Tokens (5m)"),
    ("cache_write_1h", "cache_write_1h_tokens", "cache_write_1h", "Cache Write Tokens (1h)"),
    ("cache_read", "cache_read_tokens", "cache_read", "Cache Read Tokens"),
    ("output", "output_tokens", "output", "Output Tokens"),
    ("web_search", "web_search_requests", None, "Web Search Requests"),
)
_METERS = {name: meter for name, _, _, meter in TOKEN_TYPES}
_PER_MTOK = Decimal(1_000_000)
_WEIGHT_SCALE = 18  # per-token prices have far fewer decimals: scaled weights are exact integers
_PROVIDERS = {"anthropic": ("Anthropic", "Claude API"), "openai": ("OpenAI", "OpenAI API")}

# FOCUS columns written, in order: (name, kind, nullable). Kinds: decimal, datetime, string, json.
FOCUS_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("BilledCost", "decimal", False),
    ("EffectiveCost", "decimal", False),
    ("ListCost", "decimal", False),
    ("ContractedCost", "decimal", False),
    ("BillingAccountId", "string", False),
    ("BillingAccountName", "string", True),
    ("BillingCurrency", "string", False),
    ("BillingPeriodStart", "datetime", False),
    ("BillingPeriodEnd", "datetime", False),
    ("ChargePeriodStart", "datetime", False),
    ("ChargePeriodEnd", "datetime", False),
    ("ChargeCategory", "string", False),
    ("ChargeClass", "string", True),
    ("ChargeDescription", "string", True),
    ("ChargeFrequency", "string", True),
    ("ConsumedQuantity", "decimal", True),
    ("ConsumedUnit", "string", True),
    ("PricingCategory", "string", True),
    ("PricingQuantity", "decimal", True),
    ("PricingUnit", "string", True),
    ("ListUnitPrice", "decimal", True),
    ("ContractedUnitPrice", "decimal", True),
    ("ProviderName", "string", False),
    ("PublisherName", "string", False),
    ("InvoiceId", "string", True),
    ("InvoiceIssuerName", "string", False),
    ("RegionId", "string", True),
    ("RegionName", "string", True),
    ("ResourceId", "string", True),
    ("ResourceName", "string", True),
    ("ResourceType", "string", True),
    ("ServiceCategory", "string", False),
    ("ServiceSubcategory", "string", True),
    ("ServiceName", "string", False),
    ("SkuId", "string", True),
    ("SkuMeter", "string", True),
    ("SkuPriceId", "string", True),
    ("SubAccountId", "string", True),
    ("SubAccountName", "string", True),
    ("SubAccountType", "string", True),
    ("Tags", "json", True),
    ("x_CostCenter", "string", True),
    ("x_Team", "string", True),
    ("x_TeamId", "string", True),
    ("x_UseCase", "string", True),
    ("x_TokenType", "string", True),
    ("x_PricingTier", "string", True),
    ("x_PriceRef", "string", True),
)


@dataclass(frozen=True, slots=True)
class Part:
    """One token type's share of one ledger row."""

    token_type: str
    quantity: int
    cost_nanos: int
    unit_price: Decimal | None  # USD per token (per request for web search); None when unpriced


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """'2026-11' -> (2026-11-01T00:00Z, 2026-12-01T00:00Z)."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"--month must look like YYYY-MM, got {month!r}") from None
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def split_row(row: Mapping[str, Any], price: ModelPrice | None) -> list[Part]:
    """Split a ledger row's cost over its token types; the parts sum exactly to `cost_nanos`."""
    cost = int(row["cost_nanos"] or 0)
    quantities = {name: int(row[column] or 0) for name, column, _, _ in TOKEN_TYPES}
    tier = str(row.get("pricing_tier") or "")
    discount = Decimal(1)
    if price is not None and tier.startswith("batch"):
        discount = price.batch_discount
    weights: dict[str, Decimal] = {}
    units: dict[str, Decimal | None] = {}
    for name, _, attr, _ in TOKEN_TYPES:
        if price is None:
            units[name] = None
        elif attr is None:
            units[name] = price.web_search_per_k / 1000 * discount
        else:
            units[name] = _rate(getattr(price, attr), tier) / _PER_MTOK * discount
        unit = units[name]
        weights[name] = quantities[name] * unit if unit is not None else Decimal(0)
    if sum(weights.values()) == 0:  # unpriced (or free): share by quantity
        weights = {name: Decimal(q) for name, q in quantities.items()}
    total_weight = sum(weights.values())
    if total_weight == 0:
        return [Part("output", 0, cost, units["output"])] if cost else []
    # Integer arithmetic (weights scaled to exact integers) is exact and far cheaper than Fraction.
    scaled = {name: int(w.scaleb(_WEIGHT_SCALE).to_integral_value()) for name, w in weights.items()}
    total_scaled = sum(scaled.values())
    shares = {
        name: _share(cost, w, total_scaled) for name, w in scaled.items() if quantities[name] or weights[name]
    }
    remainder = cost - sum(shares.values())
    if remainder:
        target = "output" if quantities["output"] else max(shares, key=lambda n: weights[n])
        shares[target] += remainder
    return [Part(name, quantities[name], nanos, units[name]) for name, nanos in shares.items()]


def _rate(rate: Rate, tier: str) -> Decimal:
    """The rate a pricing tier names: a summed line has no single call size to pick it from."""
    if "long_context" in tier and rate.tiers:
        return rate.tiers[-1][1]
    return rate.base


def _share(cost: int, weight: int, total: int) -> int:
    """cost x weight / total, rounded half to even, in integers."""
    quotient, rest = divmod(cost * weight, total)
    if 2 * rest > total or (2 * rest == total and quotient % 2):
        quotient += 1
    return quotient


def _usd(nanos: int) -> Decimal:
    return (Decimal(nanos) / NANOS_PER_USD).quantize(Decimal("0.000000001"))


def focus_rows(rows: Iterable[Mapping[str, Any]], month: str, pricer: Pricer) -> list[dict[str, Any]]:
    """FOCUS 1.2 rows (Python values: Decimal, datetime, str, None) for a month's chargeback lines."""
    period_start, period_end = month_bounds(month)
    charges: dict[tuple[Any, ...], list[int]] = {}
    for row in rows:
        day = str(row["day"])
        started = datetime.fromisoformat(day).replace(tzinfo=UTC)
        model = row["upstream_model"] or row["requested_model"] or "unknown"
        price = pricer.price(row["provider"], model, started) if model != "unknown" else None
        attribution = (
            row["org_id"],
            row["org_name"],
            row["cost_center"],
            row["team_id"],
            row["team_name"],
            row["use_case"],
            row["provider"],
            model,
            row["pricing_tier"] or "standard",
            row["price_ref"],
        )
        for part in split_row(row, price):
            key = (day, *attribution, part.token_type, part.unit_price)
            totals = charges.setdefault(key, [0, 0])
            totals[0] += part.quantity
            totals[1] += part.cost_nanos
    out = []
    # Charges share few days and attributions: their datetimes and Tags are built once each.
    days: dict[str, tuple[datetime, datetime]] = {}
    tags: dict[tuple[Any, ...], dict[str, str]] = {}
    for key in sorted(charges, key=lambda k: tuple("" if v is None else str(v) for v in k)):
        quantity, nanos = charges[key]
        period = days.get(key[0])
        if period is None:
            start = datetime.fromisoformat(key[0]).replace(tzinfo=UTC)
            period = days[key[0]] = (start, start + timedelta(days=1))
        named = (key[3], key[5], key[4], key[6])
        tag = tags.get(named)
        if tag is None:
            fields = zip(("cost_center", "team", "team_id", "use_case"), named, strict=True)
            tag = tags[named] = {k: v for k, v in fields if v is not None}
        out.append(_focus_row(key, quantity, nanos, period_start, period_end, period, tag))
    return out


def _focus_row(
    key: tuple[Any, ...],
    quantity: int,
    nanos: int,
    period_start: datetime,
    period_end: datetime,
    charge_period: tuple[datetime, datetime],
    tags: dict[str, str],
) -> dict[str, Any]:
    (_, org_id, org_name, cost_center, team_id, team, use_case, provider, model, tier, price_ref) = key[:11]
    token_type, unit_price = key[11], key[12]
    meter = _METERS[token_type]
    unit = "Requests" if token_type == "web_search" else "Tokens"
    provider_name, service = _PROVIDERS.get(provider, (str(provider).title(), f"{str(provider).title()} API"))
    cost = _usd(nanos)
    return {
        "BilledCost": cost,
        "EffectiveCost": cost,
        "ListCost": cost,
        "ContractedCost": cost,
        "BillingAccountId": org_id or "unattributed",
        "BillingAccountName": org_name,
        "BillingCurrency": "USD",
        "BillingPeriodStart": period_start,
        "BillingPeriodEnd": period_end,
        "ChargePeriodStart": charge_period[0],
        "ChargePeriodEnd": charge_period[1],
        "ChargeCategory": "Usage",
        "ChargeClass": None,
        "ChargeDescription": f"{model} {meter.lower()} ({tier})",
        "ChargeFrequency": "Usage-Based",
        "ConsumedQuantity": Decimal(quantity),
        "ConsumedUnit": unit,
        "PricingCategory": "Standard",
        "PricingQuantity": Decimal(quantity),
        "PricingUnit": unit,
        "ListUnitPrice": unit_price,
        "ContractedUnitPrice": unit_price,
        "ProviderName": provider_name,
        "PublisherName": provider_name,
        # The month's chargeback acts as a provisional internal invoice per billing account, and
        # FOCUS wants every such charge to carry its invoice's id.
        "InvoiceId": f"spendgate-{org_id or 'unattributed'}-{period_start:%Y-%m}",
        "InvoiceIssuerName": provider_name,
        "RegionId": None,
        "RegionName": None,
        "ResourceId": None,
        "ResourceName": None,
        "ResourceType": None,
        "ServiceCategory": "AI and Machine Learning",
        "ServiceSubcategory": "Generative AI",
        "ServiceName": service,
        "SkuId": f"{provider}/{model}/{token_type}",
        "SkuMeter": meter,
        "SkuPriceId": f"{provider}/{model}/{token_type}/{tier}",
        "SubAccountId": cost_center,
        "SubAccountName": cost_center,
        "SubAccountType": "Cost Center" if cost_center is not None else None,
        "Tags": tags,
        "x_CostCenter": cost_center,
        "x_Team": team,
        "x_TeamId": team_id,
        "x_UseCase": use_case,
        "x_TokenType": token_type,
        "x_PricingTier": tier,
        "x_PriceRef": price_ref,
    }


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, Decimal):
        # Always with a decimal point ("2000.0"): readers infer a CSV column's type from its text,
        # and FOCUS wants decimal columns typed Decimal even when every value is whole.
        whole, _, fraction = format(value, "f").partition(".")
        return f"{whole}.{fraction.rstrip('0') or '0'}"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """FOCUS CSV: datetimes `YYYY-MM-DDTHH:MM:SSZ`, plain decimals with a point (`2000.0`), Tags as
    JSON, null as empty."""
    buffer = io.StringIO()
    names = [name for name, _, _ in FOCUS_COLUMNS]
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    # Column by column: an export repeats few distinct dates and amounts, so each is formatted
    # once, and the csv module writes None as an empty field by itself.
    seen: dict[Any, str] = {}

    def cached(value: Any) -> str:
        text = seen.get(value)
        if text is None:
            text = seen[value] = _text(value)
        return text

    columns = []
    for name, kind, _ in FOCUS_COLUMNS:
        values = [row[name] for row in rows]
        if kind == "string":
            columns.append(values)
        elif kind == "json":  # Tags: rows of one attribution share one dict
            texts: dict[int, str] = {}
            columns.append([texts.get(id(v)) or texts.setdefault(id(v), _text(v)) for v in values])
        else:
            columns.append([cached(v) for v in values])
    writer.writerows(zip(*columns, strict=True))
    return buffer.getvalue()


def write_parquet(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """FOCUS Parquet: costs decimal(38,9), unit prices decimal(38,18), quantities decimal(38,0),
    datetimes UTC timestamps, Tags a JSON string."""
    require("parquet", "the FOCUS Parquet export (--format focus-parquet)")
    import pyarrow as pa
    import pyarrow.parquet as pq

    kinds = {
        "decimal": pa.decimal128(38, 9),
        "datetime": pa.timestamp("s", tz="UTC"),
        "string": pa.string(),
        "json": pa.string(),
    }
    special = {
        "ListUnitPrice": pa.decimal128(38, 18),
        "ContractedUnitPrice": pa.decimal128(38, 18),
        "ConsumedQuantity": pa.decimal128(38, 0),
        "PricingQuantity": pa.decimal128(38, 0),
    }
    fields = [pa.field(n, special.get(n, kinds[k]), nullable=nullable) for n, k, nullable in FOCUS_COLUMNS]
    schema = pa.schema(fields)
    columns = {}
    for name, kind, _ in FOCUS_COLUMNS:
        values = [row[name] for row in rows]
        if kind == "json":
            values = [None if v is None else json.dumps(v, sort_keys=True) for v in values]
        columns[name] = values
    pq.write_table(pa.Table.from_pydict(columns, schema=schema), path)


def summarize(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Spend by cost center -> team -> use case, largest first: nested dicts with requests and
    cost_nanos at every level, and inferred_nanos per use case (the part whose use case was
    inferred rather than declared)."""
    tree: dict[Any, dict[str, Any]] = {}
    for row in rows:
        nanos = int(row["cost_nanos"] or 0)
        center = tree.setdefault(row["cost_center"], {"requests": 0, "cost_nanos": 0, "teams": {}})
        team = center["teams"].setdefault(
            row["team_id"], {"name": row["team_name"], "requests": 0, "cost_nanos": 0, "use_cases": {}}
        )
        use_case = team["use_cases"].setdefault(
            row["use_case"], {"requests": 0, "cost_nanos": 0, "inferred_nanos": 0}
        )
        for node in (center, team, use_case):
            node["requests"] += int(row["requests"])
            node["cost_nanos"] += nanos
        if source_kind(row.get("use_case_source"), row["use_case"]) == "inferred":
            use_case["inferred_nanos"] += nanos

    def ordered(items: dict[Any, dict[str, Any]]) -> list[tuple[Any, dict[str, Any]]]:
        return sorted(items.items(), key=lambda kv: (-kv[1]["cost_nanos"], str(kv[0])))

    out = []
    for cc, center in ordered(tree):
        teams = []
        for team_id, team in ordered(center["teams"]):
            cases = [
                {
                    "use_case": uc,
                    "requests": v["requests"],
                    "cost_nanos": v["cost_nanos"],
                    "inferred_nanos": v["inferred_nanos"],
                }
                for uc, v in ordered(team["use_cases"])
            ]
            teams.append(
                {
                    "team_id": team_id,
                    "team": team["name"],
                    "requests": team["requests"],
                    "cost_nanos": team["cost_nanos"],
                    "use_cases": cases,
                }
            )
        out.append(
            {
                "cost_center": cc,
                "requests": center["requests"],
                "cost_nanos": center["cost_nanos"],
                "teams": teams,
            }
        )
    return out


def summary_json(month: str, tree: list[dict[str, Any]]) -> dict[str, Any]:
    """The `summarize` tree as JSON: exact USD strings at every level."""

    def money(node: dict[str, Any]) -> dict[str, Any]:
        nested = ("cost_nanos", "inferred_nanos", "teams", "use_cases")
        out = {k: v for k, v in node.items() if k not in nested}
        out["cost_usd"] = format_usd(node["cost_nanos"])
        if "inferred_nanos" in node:  # a use case: the part whose use case Spendgate inferred
            out["inferred_usd"] = format_usd(node["inferred_nanos"])
        if "teams" in node:
            out["teams"] = [money(t) for t in node["teams"]]
        if "use_cases" in node:
            out["use_cases"] = [money(u) for u in node["use_cases"]]
        return out

    total = sum(c["cost_nanos"] for c in tree)
    return {"month": month, "total_usd": format_usd(total), "cost_centers": [money(c) for c in tree]}
