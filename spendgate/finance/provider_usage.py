"""Provider-reported usage and cost: the Anthropic and OpenAI admin APIs, and their JSON/CSV exports.

Everything becomes `ProviderUsage` rows, one per UTC day, provider, provider key id and model.
Usage and cost come from different endpoints; rows with the same key are merged. Anthropic's cost
report is not split by key, so its cost lands on key id `*` (`NO_KEY_SPLIT`).

Admin keys are passed in by the caller (the CLI reads them from an environment variable) and
are only ever sent in a request header: never logged, never part of an error message.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import partial
from typing import Any

import aiohttp

from spendgate.store.finance import ProviderUsage as ProviderUsage

PROVIDERS = ("anthropic", "openai")
NO_KEY_SPLIT = "*"
DEFAULT_BASE_URLS = {"anthropic": "https://api.anthropic.com", "openai": "https://api.openai.com"}
ANTHROPIC_VERSION = "2023-06-01"
CSV_COLUMNS = (
    "day",
    "provider",
    "api_key_id",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
)
_NANOS_PER_USD = Decimal(1_000_000_000)
_NANOS_PER_CENT = Decimal(10_000_000)
_PAGE_LIMIT = 31  # the most daily buckets either API returns per page
_MAX_PAGES = 10_000


class ProviderAPIError(RuntimeError):
    """The provider answered with an error, or with something that is not a usage/cost page."""


def merge(rows: Iterable[ProviderUsage]) -> list[ProviderUsage]:
    """Sum rows that share (day, provider, key id, model); cost stays None only if no row had one."""
    out: dict[tuple[str, str, str, str], ProviderUsage] = {}
    for row in rows:
        seen = out.get(row.key)
        if seen is None:
            out[row.key] = row
            continue
        out[row.key] = replace(
            seen,
            input_tokens=seen.input_tokens + row.input_tokens,
            output_tokens=seen.output_tokens + row.output_tokens,
            cache_read_tokens=seen.cache_read_tokens + row.cache_read_tokens,
            cache_write_tokens=seen.cache_write_tokens + row.cache_write_tokens,
            requests=_add(seen.requests, row.requests),
            cost_nanos=_add(seen.cost_nanos, row.cost_nanos),
        )
    return sorted(out.values(), key=lambda r: r.key)


def _add(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else a + b


def _nanos(amount: Any, per_unit: Decimal) -> int:
    value = Decimal(str(amount)) * per_unit
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _int(value: Any) -> int:
    return int(value or 0)


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date (YYYY-MM-DD): {text!r}") from None


# --- one results page -> rows ----------------------------------------------------------------
def anthropic_rows(page: Mapping[str, Any]) -> list[ProviderUsage]:
    """Rows from one page of `usage_report/messages` or `cost_report` (Anthropic)."""
    rows = []
    for bucket in _buckets(page):
        day = str(bucket["starting_at"])[:10]
        for r in bucket.get("results") or []:
            model = r.get("model") or ""
            if "amount" in r:  # cost_report: cents as a decimal string, not split by key
                _check_currency(r.get("currency"))
                rows.append(
                    ProviderUsage(
                        day, "anthropic", NO_KEY_SPLIT, model, cost_nanos=_nanos(r["amount"], _NANOS_PER_CENT)
                    )
                )
                continue
            creation = r.get("cache_creation") or {}
            rows.append(
                ProviderUsage(
                    day,
                    "anthropic",
                    r.get("api_key_id") or "",
                    model,
                    input_tokens=_int(r.get("uncached_input_tokens")),
                    output_tokens=_int(r.get("output_tokens")),
                    cache_read_tokens=_int(r.get("cache_read_input_tokens")),
                    cache_write_tokens=_int(creation.get("ephemeral_5m_input_tokens"))
                    + _int(creation.get("ephemeral_1h_input_tokens")),
                )
            )
    return rows


def openai_rows(page: Mapping[str, Any]) -> list[ProviderUsage]:
    """Rows from one page of `usage/completions` or `costs` (OpenAI)."""
    rows = []
    for bucket in _buckets(page):
        day = datetime.fromtimestamp(int(bucket["start_time"]), UTC).date().isoformat()
        for r in bucket.get("results") or []:
            key = r.get("api_key_id") or ""
            if "amount" in r:  # costs: dollars; the line item reads "<model>, input" and the like
                amount = r["amount"] or {}
                _check_currency(amount.get("currency"))
                model = str(r.get("line_item") or "").split(",")[0].strip()
                rows.append(
                    ProviderUsage(
                        day, "openai", key, model, cost_nanos=_nanos(amount.get("value", 0), _NANOS_PER_USD)
                    )
                )
                continue
            total_in, cached = _int(r.get("input_tokens")), _int(r.get("input_cached_tokens"))
            rows.append(
                ProviderUsage(
                    day,
                    "openai",
                    key,
                    r.get("model") or "",
                    input_tokens=total_in - cached,
                    output_tokens=_int(r.get("output_tokens")),
                    cache_read_tokens=cached,
                    requests=_int(r.get("num_model_requests")),
                )
            )
    return rows


def _buckets(page: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    data = page.get("data") if isinstance(page, Mapping) else None
    if not isinstance(data, list):
        raise ProviderAPIError("not a usage or cost page: no 'data' list")
    return data


def _check_currency(currency: Any) -> None:
    if currency not in (None, "USD", "usd"):
        raise ProviderAPIError(f"only USD costs are supported, got {currency!r}")


PAGE_PARSERS = {"anthropic": anthropic_rows, "openai": openai_rows}


# --- files -------------------------------------------------------------------------------------
def parse_json_export(provider: str, text: str) -> list[ProviderUsage]:
    """A saved API response (one page, or a list of pages) of the usage or cost endpoint."""
    try:
        value = json.loads(text, parse_float=Decimal)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    pages = value if isinstance(value, list) else [value]
    parse = PAGE_PARSERS[provider]
    try:
        return merge(row for page in pages for row in parse(page))
    except (KeyError, TypeError, ArithmeticError) as exc:
        raise ValueError(f"not a {provider} usage or cost export: {exc!r}") from None


def parse_csv_export(provider: str, text: str) -> list[ProviderUsage]:
    """CSV with the columns in `CSV_COLUMNS`; cost_usd may be empty (tokens only)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"CSV is missing columns: {', '.join(missing)}")
    rows = []
    for line, rec in enumerate(reader, start=2):
        if rec["provider"].strip() != provider:
            raise ValueError(f"line {line}: provider {rec['provider']!r}, expected {provider!r}")
        try:
            cost = rec["cost_usd"].strip()
            rows.append(
                ProviderUsage(
                    parse_date(rec["day"].strip()).isoformat(),
                    provider,
                    rec["api_key_id"].strip(),
                    rec["model"].strip(),
                    input_tokens=_int(rec["input_tokens"].strip()),
                    output_tokens=_int(rec["output_tokens"].strip()),
                    cache_read_tokens=_int(rec["cache_read_tokens"].strip()),
                    cache_write_tokens=_int(rec["cache_write_tokens"].strip()),
                    cost_nanos=_nanos(cost, _NANOS_PER_USD) if cost else None,
                )
            )
        except (ValueError, ArithmeticError) as exc:
            raise ValueError(f"line {line}: {exc}") from None
    return merge(rows)


# --- the admin APIs ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    path: str
    params: Sequence[tuple[str, str]]


def anthropic_endpoints(since: date, until: date) -> list[Endpoint]:
    window = [
        ("starting_at", f"{since.isoformat()}T00:00:00Z"),
        ("ending_at", f"{until.isoformat()}T00:00:00Z"),
        ("bucket_width", "1d"),
        ("limit", str(_PAGE_LIMIT)),
    ]
    return [
        Endpoint(
            "/v1/organizations/usage_report/messages",
            [*window, ("group_by[]", "api_key_id"), ("group_by[]", "model")],
        ),
        Endpoint("/v1/organizations/cost_report", [*window, ("group_by[]", "description")]),
    ]


def openai_endpoints(since: date, until: date) -> list[Endpoint]:
    window = [
        ("start_time", str(_epoch(since))),
        ("end_time", str(_epoch(until))),
        ("bucket_width", "1d"),
        ("limit", str(_PAGE_LIMIT)),
    ]
    return [
        Endpoint(
            "/v1/organization/usage/completions", [*window, ("group_by", "api_key_id"), ("group_by", "model")]
        ),
        Endpoint("/v1/organization/costs", [*window, ("group_by", "api_key_id"), ("group_by", "line_item")]),
    ]


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


# Each provider's admin API: its endpoints and how it takes the admin key.
ENDPOINTS = {"anthropic": anthropic_endpoints, "openai": openai_endpoints}
AUTH_HEADERS: dict[str, Callable[[str], dict[str, str]]] = {
    "anthropic": lambda key: {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION},
    "openai": lambda key: {"authorization": f"Bearer {key}"},
}


def api_root(provider: str, base_url: str | None) -> str:
    root = (base_url or DEFAULT_BASE_URLS[provider]).rstrip("/")
    return root.removesuffix("/v1")


async def fetch_usage(
    provider: str,
    admin_key: str,
    since: date,
    until: date,
    base_url: str | None = None,
    timeout_s: float = 60.0,
    on_page: Callable[[int], None] | None = None,
) -> list[ProviderUsage]:
    """Usage and cost per day, key and model in [since, until) from the provider's admin API;
    `on_page` hears how many pages have come so far (a progress bar's count)."""
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}")
    if until <= since:
        raise ValueError("--until must be after --since")
    endpoints = ENDPOINTS[provider](since, until)
    root, parse = api_root(provider, base_url), PAGE_PARSERS[provider]
    rows: list[ProviderUsage] = []
    pages = 0
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(headers=AUTH_HEADERS[provider](admin_key), timeout=timeout) as session:
        for endpoint in endpoints:
            async for page in _pages(session, root, endpoint):
                try:
                    rows.extend(parse(page))
                except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                    raise ProviderAPIError(f"GET {endpoint.path}: unexpected page: {exc!r}") from None
                pages += 1
                if on_page is not None:
                    on_page(pages)
    return merge(rows)


async def _pages(
    session: aiohttp.ClientSession, root: str, endpoint: Endpoint
) -> AsyncIterator[dict[str, Any]]:
    """Every page of one endpoint, following `next_page` while `has_more`."""
    page_token: str | None = None
    for _ in range(_MAX_PAGES):
        params = [*endpoint.params, *([("page", page_token)] if page_token else [])]
        async with session.get(f"{root}{endpoint.path}", params=params) as resp:
            if resp.status != 200:
                text = (await resp.text())[:300]
                raise ProviderAPIError(f"GET {endpoint.path} answered {resp.status}: {text}")
            try:
                page = await resp.json(loads=partial(json.loads, parse_float=Decimal), content_type=None)
            except ValueError:
                raise ProviderAPIError(f"GET {endpoint.path} did not return JSON") from None
        if not isinstance(page, dict):
            raise ProviderAPIError(f"GET {endpoint.path} did not return a page object")
        yield page
        page_token = page.get("next_page")
        if not page.get("has_more") or not page_token:
            return
    raise ProviderAPIError(f"GET {endpoint.path}: more than {_MAX_PAGES} pages")
