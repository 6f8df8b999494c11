"""One anomaly pass: read the spend series, run the detector per group, open and resolve alerts.

Blocking (store calls): run it in a thread. It returns the messages to send; the caller delivers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from spendgate.alerts.channels import AlertMessage
from spendgate.alerts.config import AlertsConfig, Channel, DetectParams
from spendgate.alerts.detector import (
    Assessment,
    Contributor,
    assess,
    baseline_days,
    daily_series,
    local_midnight,
    rank_contributors,
)
from spendgate.clock import iso
from spendgate.dimensions import CONTRIBUTOR_BY
from spendgate.store.alerts import Alert, AlertStore
from spendgate.store.principals import NameStore
from spendgate.store.spend import SpendStore


class AnomalyStore(AlertStore, SpendStore, NameStore, Protocol):
    """Spend series to check, alerts to open and resolve once, names to show."""

Outgoing = tuple[AlertMessage, list[Channel]]


def usd(nanos: float) -> str:
    return f"${nanos / 1e9:,.2f}"


# Alerts show teams, keys and users by name (an org-wide alert shows the org's id).
NAMED_KINDS = ("team", "key", "user")


@dataclass(frozen=True, slots=True)
class Names:
    """Display names for ids (teams, keys, users), loaded once per pass."""

    names: dict[str, dict[str, str]]

    @classmethod
    def load(cls, store: NameStore) -> Names:
        return cls({kind: store.names(kind) for kind in NAMED_KINDS})

    def of(self, kind: str, value: str) -> str:
        return self.names.get(kind, {}).get(value, value)


def detail_command(by: str, value: str, day: date) -> str:
    return f"spendgate alerts detail --by {by} --value {value} --day {day.isoformat()}"


def contributors(
    store: SpendStore, params: DetectParams, value: str, today: date, now: datetime, names: Names
) -> dict[str, list[Contributor]]:
    """Per dimension (key, user, use case, model, session): who added most over their own baseline."""
    zone = params.zone
    start = iso(local_midnight(today, zone))
    days = baseline_days(today, params)
    out: dict[str, list[Contributor]] = {}
    for dim in CONTRIBUTOR_BY:
        if dim == params.by:
            continue
        now_spend = store.spend_totals(dim, start, iso(now), where=(params.by, value))
        base: dict[str | None, float] = {}
        for day in days:
            day_spend = store.spend_totals(
                dim,
                iso(local_midnight(day, zone)),
                iso(local_midnight(day + timedelta(days=1), zone)),
                where=(params.by, value),
            )
            for k, v in day_spend.items():
                base[k] = base.get(k, 0.0) + v / len(days)
        ranked = rank_contributors(dim, now_spend, base)
        out[dim] = [
            Contributor(
                c.dimension, names.of(dim, c.value), c.today_nanos, c.baseline_nanos, c.increase_nanos
            )
            for c in ranked
        ]
    return out


def contributor_line(c: Contributor) -> str:
    versus = f"{c.ratio:.1f}x its baseline {usd(c.baseline_nanos)}" if c.ratio else "new today"
    return f"{c.dimension} {c.value}: {usd(c.today_nanos)} today, +{usd(c.increase_nanos)} ({versus})"


PREFERENCE = ("use_case", "key", "user", "session", "model")


def top_contributor(found: dict[str, list[Contributor]], increase_nanos: float) -> Contributor | None:
    """The single most telling cause. Candidates: each dimension's biggest riser that explains at least
    half of the group's increase; of those the one furthest above its own baseline (new beats any ratio);
    ties go to the most actionable dimension (use case, then key, user, session, model)."""
    leaders = [found[dim][0] for dim in PREFERENCE if found.get(dim)]
    candidates = [c for c in leaders if c.increase_nanos >= increase_nanos / 2] or leaders
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c.ratio is None, c.ratio or 0.0, -PREFERENCE.index(c.dimension)))


def explain(
    store: SpendStore, params: DetectParams, value: str, today: date, now: datetime, names: Names
) -> tuple[Assessment, dict[str, list[Contributor]]]:
    """The detector's view of one group today, with contributors (what `alerts detail` prints)."""
    zone = params.zone
    lookback = max(params.baseline_days, 7 * params.same_weekday_weeks) + 1
    since = iso(local_midnight(today - timedelta(days=lookback), zone))
    rows = store.spend_hourly(params.by, since, iso(now), where=(params.by, value))
    series = daily_series(rows, zone).get(value, {})
    burn = store.spend_totals(
        params.by, iso(now - timedelta(hours=params.burn_window_hours)), iso(now), where=(params.by, value)
    )
    at_check = now >= datetime.combine(today, params.check_time, tzinfo=zone)
    found = assess(
        series, today, series.get(today, 0), params, at_check_time=at_check, burn_nanos=burn.get(value, 0)
    )
    return found, contributors(store, params, value, today, now, names)


def anomaly_message(
    alert_id: str,
    params: DetectParams,
    value: str,
    label: str,
    today: date,
    now: datetime,
    found: Assessment,
    causes: dict[str, list[Contributor]],
) -> AlertMessage:
    local = now.astimezone(params.zone).strftime("%H:%M")
    window = (
        f"the same weekday over the last {params.same_weekday_weeks} weeks"
        if params.same_weekday_weeks
        else f"the last {params.baseline_days} days"
    )
    base = found.baseline.effective(params)
    who = f"{params.by} {label}"
    if found.fire == "new_floor":
        title = f"Spend alert: {who} (no history) spent {usd(found.today_nanos)} today"
        summary = f"{who}: {usd(found.today_nanos)} today by {local} {params.timezone}; {found.note}."
    elif found.fire == "burn":
        title = f"Runaway spend: {who} spent {usd(found.burn_nanos)} in {params.burn_window_hours:g}h"
        summary = (
            f"{who}: {usd(found.burn_nanos)} in the last {params.burn_window_hours:g} hours, more than "
            f"{params.burn_day_fraction:g} x its average day of {usd(base)} ({window}); "
            f"{usd(found.today_nanos)} today so far ({found.ratio:.1f}x)."
        )
    else:
        title = f"Spend anomaly: {who} at {found.ratio:.1f}x its baseline"
        summary = (
            f"{who}: {usd(found.today_nanos)} today by {local} {params.timezone} vs an average of "
            f"{usd(base)}/day over {window}: {found.ratio:.1f}x (threshold {params.threshold:g}x)."
        )
    top = top_contributor(causes, found.today_nanos - found.baseline.nanos)
    if top is not None:
        summary += f" Top increase: {top.dimension} {top.value} +{usd(top.increase_nanos)}."
    lines = [
        contributor_line(c)
        for dim in ("use_case", "key", "user", "model", "session")
        for c in causes.get(dim, [])[:2]
    ]
    if found.note and found.fire != "new_floor":
        lines.append(found.note)
    details: dict[str, Any] = {
        "group_by": params.by,
        "group": value,
        "name": label,
        "day": today.isoformat(),
        "reason": found.fire,
        "today_usd": round(found.today_nanos / 1e9, 2),
        "baseline_usd": round(base / 1e9, 2),
        "ratio": None if found.ratio is None else round(found.ratio, 2),
        "threshold": params.threshold,
        "burn_usd": round(found.burn_nanos / 1e9, 2),
        "new_group": found.new_group,
        "note": found.note,
        "top_contributor": None if top is None else {"dimension": top.dimension, "value": top.value},
        "contributors": {
            dim: [
                {
                    "value": c.value,
                    "today_usd": round(c.today_nanos / 1e9, 2),
                    "baseline_usd": round(c.baseline_nanos / 1e9, 2),
                    "increase_usd": round(c.increase_nanos / 1e9, 2),
                }
                for c in found_list
            ]
            for dim, found_list in causes.items()
        },
    }
    critical = found.fire == "burn" or (found.ratio or 0) >= 2 * params.threshold
    return AlertMessage(
        alert_id=alert_id,
        kind="anomaly",
        action="trigger",
        title=title,
        summary=summary,
        dedup_key=dedup_key(params.by, value, today),
        severity="critical" if critical else "error",
        group=f"{params.by}:{label}",
        lines=tuple(lines),
        command=detail_command(params.by, value, today),
        details=details,
        at=iso(now),
    )


def dedup_key(by: str, value: str, day: date | str) -> str:
    day_text = day if isinstance(day, str) else day.isoformat()
    return f"spendgate:{value}:{day_text}" if by == "team" else f"spendgate:{by}={value}:{day_text}"


def resolve_message(row: Alert, note: str, now: datetime, label: str) -> AlertMessage:
    who = f"{row.group_by} {label}"
    return AlertMessage(
        alert_id=row.id,
        kind="anomaly",
        action="resolve",
        title=f"Spend back to normal: {who}",
        summary=f"{who}: resolved ({note}).",
        dedup_key=dedup_key(row.group_by, row.group_value, row.day),
        severity="info",
        group=f"{row.group_by}:{label}",
        details={"group": row.group_value, "day": row.day, "note": note},
        at=iso(now),
    )


def plan_anomalies(store: AnomalyStore, config: AlertsConfig, now: datetime) -> list[Outgoing]:
    """Evaluate every group; open alerts that fire (once per group and day), resolve those that cleared."""
    params = config.detect
    zone = params.zone
    today = now.astimezone(zone).date()
    lookback = max(params.baseline_days, 7 * params.same_weekday_weeks) + 1
    since = iso(local_midnight(today - timedelta(days=lookback), zone))
    series = daily_series(store.spend_hourly(params.by, since, iso(now)), zone)
    burn = store.spend_totals(params.by, iso(now - timedelta(hours=params.burn_window_hours)), iso(now))
    at_check = now.astimezone(zone).time() >= params.check_time
    names = Names.load(store)
    out: list[Outgoing] = []
    opened: dict[str, Alert] = {}
    for row in store.list_alerts(status="open", kind="anomaly"):
        if row.day < today.isoformat():  # yesterday's alerts end with the day
            if store.resolve_alert(row.id, iso(now), "the day ended"):
                label = names.of(row.group_by, row.group_value)
                route = _route(config, row.group_by, row.group_value, names)
                out.append((resolve_message(row, "the day ended", now, label), route))
        elif row.group_by == params.by:
            opened[row.alert_key] = row
    firing: dict[str, Assessment] = {}
    for value, days in series.items():
        if value == "(none)":
            continue
        found = assess(
            days, today, days.get(today, 0), params, at_check_time=at_check, burn_nanos=burn.get(value, 0)
        )
        key = f"anomaly:{params.by}:{value}:{today.isoformat()}"
        if key in opened:
            if not found.holds:
                note = "spend is back under the threshold"
                if store.resolve_alert(opened[key].id, iso(now), note):
                    row = opened[key]
                    label = names.of(row.group_by, value)
                    route = _route(config, row.group_by, row.group_value, names)
                    out.append((resolve_message(row, note, now, label), route))
        elif found.fire is not None:
            firing[key] = found
    already = store.alert_keys(list(firing))
    for key, found in firing.items():
        if key in already:
            continue  # fired (and maybe resolved) earlier today: one alert per group per day
        value = key.split(":", 2)[2].rsplit(":", 1)[0]
        label = names.of(params.by, value)
        causes = contributors(store, params, value, today, now, names)
        msg = anomaly_message("", params, value, label, today, now, found, causes)
        alert_id = store.open_alert(
            alert_key=key,
            kind="anomaly",
            group_by=params.by,
            group_value=value,
            day=today.isoformat(),
            summary=msg.summary,
            details={**msg.details, "title": msg.title, "lines": list(msg.lines), "command": msg.command},
            opened_at=iso(now),
        )
        if alert_id is None:
            continue  # another replica opened it first
        from dataclasses import replace

        out.append((replace(msg, alert_id=alert_id), _route(config, params.by, value, names)))
    return out


def _route(config: AlertsConfig, group_by: str, value: str, names: Names) -> list[Channel]:
    return config.channels_for(value, names.of(group_by, value))
