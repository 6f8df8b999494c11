"""Spend over a period, broken down by day, use case, model (and user), in one rollup query: the
figures the My usage and Team pages share. Money leaves here as exact decimal strings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from spendgate.clock import iso
from spendgate.pricing import format_usd
from spendgate.store.base import Store


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
    store: Store,
    since: datetime,
    until: datetime,
    where: Mapping[str, str | None],
    by_user: bool = False,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Totals, per-day series (every day of [since, until), zeros included), and per use case / model
    (/ user) lists for calls matching `where` (rollup key columns)."""
    groups: Sequence[str] = ["day", "use_case", "upstream_model", *(["user_id"] if by_user else [])]
    rows = store.sum_grouped(groups, ["requests", "cost_nanos"], iso(since), iso(until), dict(where))
    days: dict[str, list[int]] = {}
    use_cases: dict[str | None, list[int]] = {}
    models: dict[str | None, list[int]] = {}
    users: dict[str | None, list[int]] = {}
    for r in rows:
        value = [int(r["requests"]), int(r["cost_nanos"])]
        for bucket, key in ((days, r["day"]), (use_cases, r["use_case"]), (models, r["upstream_model"])):
            _add(bucket, key, value)
        if by_user:
            _add(users, r["user_id"], value)
    total = [sum(v[0] for v in days.values()), sum(v[1] for v in days.values())]
    daily = []
    day = since.date()
    while day < until.date() or (
        day == until.date() and until > since and iso(until)[11:] != "00:00:00.000000Z"
    ):
        value = days.get(day.isoformat(), [0, 0])
        daily.append({"day": day.isoformat(), "requests": value[0], "cost_usd": format_usd(value[1])})
        day += timedelta(days=1)
    out: dict[str, Any] = {
        "requests": total[0],
        "spend_usd": format_usd(total[1]),
        "daily": daily,
        "by_use_case": rows_by(use_cases, label="use_case"),
        "by_model": rows_by(models, label="model"),
    }
    if by_user:
        out["by_user"] = rows_by(users, names, label="user")
    return out


def _add(bucket: dict[Any, list[int]], key: Any, value: list[int]) -> None:
    total = bucket.setdefault(key, [0, 0])
    total[0] += value[0]
    total[1] += value[1]
