"""Replay the daily check over history: how many alerts each threshold would have fired.

For every group and every day in the period, the detector runs as it would have at the check time
(spend from local midnight to the check time, against the baseline of the days before). The burn-rate
check is not replayed. The result, per group and month, is the calibration behind the 3x default.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from spendgate.alerts.config import DetectParams
from spendgate.alerts.detector import assess, daily_series, hour_start, local_day, local_midnight
from spendgate.clock import iso
from spendgate.store.spend import SpendStore


def replay(
    full_days: Mapping[str, Mapping[date, int]],
    at_check: Mapping[str, Mapping[date, int]],
    start: date,
    end: date,
    thresholds: Sequence[float],
    params: DetectParams,
) -> list[dict[str, Any]]:
    """Pure: per group, month and threshold, the days that would have alerted (end exclusive).

    `full_days` gives the baseline (whole past days); `at_check` the spend by the check time each day.
    """
    counts: dict[tuple[str, str], dict[float, list[str]]] = defaultdict(lambda: {t: [] for t in thresholds})
    for group in sorted(full_days):
        series = full_days[group]
        day = start
        while day < end:
            spent = at_check.get(group, {}).get(day, 0)
            fired = counts[(group, day.strftime("%Y-%m"))]
            for threshold in thresholds:
                found = assess(series, day, spent, params, at_check_time=True, threshold=threshold)
                if found.fire is not None:
                    fired[threshold].append(day.isoformat())
            day += timedelta(days=1)
    rows = []
    for (group, month), by_threshold in sorted(counts.items()):
        row: dict[str, Any] = {"group": group, "month": month}
        for threshold in thresholds:
            row[_column(threshold)] = len(by_threshold[threshold])
            row[f"days_{_column(threshold)}"] = by_threshold[threshold]
        rows.append(row)
    return rows


def _column(threshold: float) -> str:
    return f"alerts_at_{threshold:g}x"


def backtest(
    store: SpendStore,
    params: DetectParams,
    thresholds: Sequence[float],
    since: date,
    until: date,
    names: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Load the hourly series for [since - baseline, until) and replay the daily check each day."""
    zone = params.zone
    lookback = max(params.baseline_days, 7 * params.same_weekday_weeks) + 1
    rows = store.spend_hourly(
        params.by,
        iso(local_midnight(since - timedelta(days=lookback), zone)),
        iso(local_midnight(until, zone)),
    )
    full = daily_series(rows, zone)
    at_check: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        begins = hour_start(row.hour)
        day = local_day(begins, zone)
        if begins < datetime.combine(day, params.check_time, tzinfo=zone):
            group = str(row.value) if row.value is not None else "(none)"
            at_check[group][day] += row.cost_nanos
    full.pop("(none)", None)
    out = replay(full, at_check, since, until, thresholds, params)
    for line in out:
        line["name"] = (names or {}).get(line["group"], line["group"])
    return out
