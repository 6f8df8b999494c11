"""Spend over a period, broken down by day, use case, model (and user), in one rollup query: the
figures the My usage and Team pages share. Money leaves here as exact decimal strings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from spendgate.clock import iso
from spendgate.inference.share import source_kind
from spendgate.pricing import NANOS_PER_USD, format_usd
from spendgate.store.spend import SpendStore


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def rows_by(
    totals: Mapping[str | None, list[int]], names: Mapping[str, str] | None = None, label: str = "name"
) -> list[dict[str, Any]]:
    ordered = sorted(totals.items(), key=lambda item: (-item[1][1], str(item[0])))
    out = [
        {
            "id": key,
            label: (names or {}).get(key, key) if key is not None else "(none)",
            "requests": value[0],
            "cost_usd": format_usd(value[1]),
        }
        for key, value in ordered
    ]
    return out


def breakdown(
    store: SpendStore,
    since: datetime,
    until: datetime,
    where: Mapping[str, str | None],
    by_user: bool = False,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Totals and per use case / model (/ user) lists for calls in [since, until) matching `where`
    (rollup key columns), from one rollup query (no day column: a month is a few dozen rows)."""
    groups: Sequence[str] = [
        "use_case",
        "use_case_source",
        "upstream_model",
        *(["user_id"] if by_user else []),
    ]
    rows = store.sum_grouped(groups, ["requests", "cost_nanos"], iso(since), iso(until), dict(where))
    use_cases: dict[str | None, list[int]] = {}
    inferred: dict[str | None, int] = {}  # per use case: the spend whose use case was inferred
    models: dict[str | None, list[int]] = {}
    users: dict[str | None, list[int]] = {}
    total = [0, 0]
    for r in rows:
        value = [int(r["requests"]), int(r["cost_nanos"])]
        _add(use_cases, r["use_case"], value)
        if source_kind(r["use_case_source"], r["use_case"]) == "inferred":
            inferred[r["use_case"]] = inferred.get(r["use_case"], 0) + value[1]
        _add(models, r["upstream_model"], value)
        if by_user:
            _add(users, r["user_id"], value)
        total[0] += value[0]
        total[1] += value[1]
    out: dict[str, Any] = {
        "requests": total[0],
        "spend_usd": format_usd(total[1]),
        "by_use_case": [
            {**row, "inferred_usd": format_usd(inferred.get(row["id"], 0))}
            for row in rows_by(use_cases, label="use_case")
        ],
        "by_model": rows_by(models, label="model"),
    }
    if by_user:
        out["by_user"] = rows_by(users, names, label="user")
    return out


def daily(
    store: SpendStore, since: datetime, until: datetime, where: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    """Spend per UTC day of [since, until), every day listed (zeros included); exact nanos kept in
    `_nanos` for callers that sum further (months)."""
    rows = store.sum_grouped(["day"], ["requests", "cost_nanos"], iso(since), iso(until), dict(where))
    days = {r["day"]: (int(r["requests"]), int(r["cost_nanos"])) for r in rows}
    out = []
    day, last = since.date(), until.date()
    if until == datetime.combine(last, datetime.min.time(), tzinfo=until.tzinfo) and last > since.date():
        last -= timedelta(days=1)  # [since, until) ends at a midnight: that day is not in it
    while day <= last:
        requests, nanos = days.get(day.isoformat(), (0, 0))
        out.append({"day": day.isoformat(), "requests": requests, "cost_usd": format_usd(nanos)})
        day += timedelta(days=1)
    return out


def _add(bucket: dict[Any, list[int]], key: Any, value: list[int]) -> None:
    total = bucket.setdefault(key, [0, 0])
    total[0] += value[0]
    total[1] += value[1]


def nanos(usd: str) -> int:
    """An exact decimal dollar string back to nano-dollars."""
    return int(Decimal(usd) * NANOS_PER_USD)
