"""Budget operations used by both the CLI and the HTTP admin API: budgets and their status,
tier events, would-block reports, exemptions, per-key rate limits and recommendations."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spendgate.admin.service import maybe_time
from spendgate.budgets.model import HARD, TIERS_HELP, Budget, Exemption, Tier, Window, window_for
from spendgate.budgets.recommend import DailySpend, Recommendation, recommend
from spendgate.clock import iso, utc_now_iso
from spendgate.dimensions import NAMED, RECOMMEND_BY
from spendgate.models import ApiKey
from spendgate.pricing import NANOS_PER_USD, format_usd
from spendgate.store.base import Conflict, NotFound
from spendgate.store.budgets import BudgetStore
from spendgate.store.principals import NameStore, PrincipalStore
from spendgate.store.spend import SpendStore


class BudgetNames(BudgetStore, NameStore, Protocol):
    """Budgets shown with the names of what they limit."""


class BudgetSpend(BudgetNames, SpendStore, Protocol):
    """Budgets against the spend in their periods."""


# --- budgets ---

_TIER_NAME = re.compile(r"[a-z][a-z0-9_-]*")
EXEMPTION_STATUSES = ("pending", "approved", "denied")
MAX_USD = 1_000_000_000


def parse_usd(text: str | Decimal | int, what: str = "amount", zero_ok: bool = False) -> int:
    """User-entered dollars as exact nanos (Decimal, never float): '12.50' -> 12_500_000_000."""
    raw = str(text).strip().removeprefix("$")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"{what} must be US dollars, e.g. 250 or 12.50; got {text!r}") from None
    if not value.is_finite() or value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{what} must be a positive number of US dollars, got {text!r}")
    if value > MAX_USD:  # past this the nanos no longer fit the database's 64-bit integers
        raise ValueError(f"{what} must be at most ${MAX_USD:,} US dollars, got {str(text)[:40]!r}")
    nanos = value * NANOS_PER_USD
    if nanos != nanos.to_integral_value():
        raise ValueError(f"{what} has more than 9 decimal places: {text!r}")
    return int(nanos)


def parse_tiers(text: str) -> tuple[Tier, ...]:
    tiers = []
    for part in text.split(","):
        name, sep, rest = part.strip().partition("=")
        percent, _, action = rest.partition(":")
        if not sep or not _TIER_NAME.fullmatch(name) or not percent.strip().isdigit():
            raise ValueError(f"tiers are {TIERS_HELP}; got {part.strip()!r}")
        tiers.append(Tier(name, int(percent), action.strip() or None))
    return check_tiers(tiers)


def check_tiers(tiers: Sequence[Tier]) -> tuple[Tier, ...]:
    names = [t.name for t in tiers]
    if len(set(names)) != len(names):
        raise ValueError(f"each tier name may appear once, got {', '.join(names)}")
    if HARD not in names:
        # Without one the budget would silently block at 100%: make the limit explicit.
        raise ValueError(f"tiers need a {HARD}=PERCENT tier (the limit that blocks); {TIERS_HELP}")
    for tier in tiers:
        if not 1 <= tier.percent <= 10_000:
            raise ValueError(f"tier {tier.name} must be 1..10000 percent of the budget, got {tier.percent}")
    return tuple(sorted(tiers, key=lambda t: t.percent))


def create_budget(
    store: BudgetStore,
    *,
    name: str,
    scope: str,
    value: str,
    amount_usd: str | Decimal | int,
    period: str = "month",
    timezone: str = "UTC",
    start: str | None = None,
    end: str | None = None,
    tiers: str | Sequence[Tier] | None = None,
    observe: bool = False,
) -> Budget:
    """Validate user input (exact dollars, tiers, fixed window) and store the budget."""
    if not name.strip() or not value.strip():
        raise ValueError("a budget needs a name and a scope value")
    # The store checks the scope and period names, the amount's sign and the time zone.
    zone = _zone(timezone)
    if period == "fixed":
        if not (start and end):
            raise ValueError("a fixed period needs --start and --end")
        start, end = local_time(start, zone), local_time(end, zone)
        if end <= start:
            raise ValueError("a fixed window must end after it starts")
    elif start or end:
        raise ValueError("--start and --end only apply to --period fixed")
    parsed = parse_tiers(tiers) if isinstance(tiers, str) else check_tiers(tiers) if tiers else None
    return store.create_budget(
        name=name.strip(),
        scope_type=scope,
        scope_value=value.strip(),
        amount_nanos=parse_usd(amount_usd),
        period=period,
        timezone=timezone,
        tiers=parsed,
        mode="observe" if observe else "enforce",
        window_start=start,
        window_end=end,
    )


def scope_names(store: NameStore) -> dict[str, str]:
    """Names of everything a budget can point to by id, for display."""
    names: dict[str, str] = {}
    for kind in NAMED:
        names.update(store.names(kind))
    return names


def scope_label(scope_type: str, scope_value: str, names: dict[str, str]) -> str:
    if scope_type in NAMED:
        return f"{scope_type}:{names.get(scope_value, scope_value)}"
    return f"{scope_type}:{scope_value}"


def budget_view(budget: Budget, names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": budget.id,  # the fields people look for first, then the rest
        "name": budget.name,
        "scope": scope_label(budget.scope_type, budget.scope_value, names),
        "amount_usd": format_usd(budget.amount_nanos),
        "hard_limit_usd": format_usd(budget.limit_nanos()),
        **asdict(budget),
        "tiers": [asdict(t) for t in budget.tiers],
    }


def budget_status(
    store: BudgetSpend,
    include_revoked: bool = False,
    now: datetime | None = None,
    budgets: Sequence[Budget] | None = None,
) -> list[dict[str, Any]]:
    """Every budget (or just `budgets`) with its current period and the ledger's spend in it so far."""
    moment = now or datetime.now(UTC)
    names = scope_names(store)
    out = []
    for budget in store.list_budgets(include_revoked) if budgets is None else budgets:
        window = window_for(budget, moment)
        state = "revoked" if budget.revoked_at else "active"
        if window is None:  # a fixed window we are before or after
            assert budget.window_start and budget.window_end
            start, end = (datetime.fromisoformat(t) for t in (budget.window_start, budget.window_end))
            window = Window("fixed", start, end)
            state = state if budget.revoked_at else "not started" if moment < window.start else "ended"
        spent, note = _spent(store, budget, window)
        reached = [t for t in budget.tiers if spent >= budget.amount_nanos * t.percent // 100]
        out.append(
            {
                **budget_view(budget, names),
                "status": state,
                "period_key": window.key,
                "period_start": window.start_iso,
                "reset_at": window.end_iso if state == "active" else None,
                "spent_usd": format_usd(spent),
                "percent_used": float(round(Fraction(spent * 100, budget.amount_nanos), 1)),
                "tier_reached": max(reached, key=lambda t: t.percent).name if reached else None,
                "note": note,
            }
        )
    return out


def _spent(store: BudgetSpend, budget: Budget, window: Window) -> tuple[int, str | None]:
    if budget.scope_type == "session" and budget.scope_value == "*":
        # A cap per session: what matters is the session closest to it.
        sessions = [r for r in store.spend("session", window.start_iso, window.end_iso) if r.id]
        if not sessions:
            return 0, "per session"
        top = max(sessions, key=lambda r: r.cost_nanos)
        return top.cost_nanos, f"per session; highest: {top.id}"
    spent = store.budget_spend(budget.scope_type, budget.scope_value, window.start_iso, window.end_iso)
    return spent, None


def budget_events(store: BudgetNames, since: str | None = None) -> list[dict[str, Any]]:
    names = scope_names(store)
    return [
        {
            **asdict(row),
            "scope": scope_label(row.scope_type, row.scope_value, names),
            "threshold_usd": format_usd(row.limit_nanos),  # the tier's threshold
            "spend_usd": format_usd(row.spend_nanos),
        }
        for row in store.list_budget_events(maybe_time(since))
    ]


def would_block_report(
    store: BudgetNames, since: str | None = None, until: str | None = None
) -> list[dict[str, Any]]:
    """Per budget: calls observation mode let through that it would have blocked.

    A call's note lists every budget it would have hit (comma-separated), so a call counts
    once for each of them.
    """
    totals: dict[str, dict[str, Any]] = {}
    for row in store.would_block(maybe_time(since), maybe_time(until)):
        for kind, _, name in (part.partition(":") for part in row.budget_note.split(",")):
            if kind == "would_block" and name:
                item = totals.setdefault(name, {"would_block": name, "requests": 0, "nanos": 0})
                item["requests"] += row.requests
                item["nanos"] += row.cost_nanos
                item["first_at"] = min(item.get("first_at", row.first), row.first)
                item["last_at"] = max(item.get("last_at", row.last), row.last)
    budgets = {b.name: b for b in store.list_budgets(include_revoked=True)}
    names = scope_names(store) if totals else {}
    out = []
    for item in sorted(totals.values(), key=lambda i: (-i["requests"], i["would_block"])):
        budget = budgets.get(item["would_block"])
        item["scope"] = scope_label(budget.scope_type, budget.scope_value, names) if budget else None
        item["mode"] = budget.mode if budget else None
        item["cost_usd"] = format_usd(item.pop("nanos"))
        out.append(item)
    return out


# --- exemptions ---


def request_exemption(
    store: BudgetStore,
    *,
    budget: str,
    reason: str,
    requested_by: str,
    amount_usd: str | Decimal | int | None = None,
    percent: int | None = None,
    hours: float | None = None,
    start: str | None = None,
    end: str | None = None,
    use_case: str | None = None,
    now: datetime | None = None,
) -> Exemption:
    """Ask for extra headroom on a budget for a while; it applies once someone else approves."""
    if (amount_usd is None) == (percent is None):
        raise ValueError("give either --amount USD or --percent P")
    if percent is not None and percent <= 0:
        raise ValueError(f"--percent must be positive, got {percent}")
    if not requested_by.strip():
        raise ValueError("say who is asking (--requested-by)")
    target = store.get_budget(budget)
    if hours is not None:
        if start or end or not hours > 0:
            raise ValueError(f"give a positive --hours H, or --start and --end (not both); got {hours} hours")
        begin = now or datetime.now(UTC)
        start, end = iso(begin), iso(begin + timedelta(hours=hours))
    elif start and end:
        # Times without an offset are read in the budget's time zone, like its periods.
        zone = ZoneInfo(target.timezone)
        start, end = local_time(start, zone), local_time(end, zone)
    else:
        raise ValueError("give --hours H, or both --start and --end")
    return store.create_exemption(
        budget=target.id,
        starts_at=start,
        ends_at=end,
        reason=reason,
        requested_by=requested_by.strip(),
        amount_nanos=parse_usd(amount_usd) if amount_usd is not None else None,
        percent=percent,
        use_case=use_case or None,
    )


def decide_exemption(
    store: BudgetStore, ref: str, *, approve: bool, by: str, note: str | None = None
) -> Exemption:
    if not by.strip():
        raise ValueError("say who decides (--by)")  # an anonymous decision is no audit trail
    return store.decide_exemption(ref, approve=approve, decided_by=by.strip(), note=note or None)


def list_exemptions(
    store: BudgetStore, status: str | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    if status is not None and status not in EXEMPTION_STATUSES:
        raise ValueError(f"status must be one of {', '.join(EXEMPTION_STATUSES)}, got {status!r}")
    budgets = {b.id: b for b in store.list_budgets(include_revoked=True)}
    now_iso = iso(now or datetime.now(UTC))
    return [exemption_view(e, budgets.get(e.budget_id), now_iso) for e in store.list_exemptions(status)]


def exemption_view(exemption: Exemption, budget: Budget | None, now_iso: str | None = None) -> dict[str, Any]:
    """The audit trail of one exemption, and whether it gives headroom right now."""
    e, now_iso = exemption, now_iso or utc_now_iso()
    if e.ends_at <= now_iso:
        state = "expired" if e.status != "denied" else "denied"
    elif e.status == "approved":
        state = "active" if e.starts_at <= now_iso else "scheduled"
    else:
        state = e.status
    return {
        "id": e.id,
        "budget": budget.name if budget else None,
        "extra_usd": format_usd(e.headroom_nanos(budget)) if budget else None,
        "state": state,
        "active_now": state == "active",
        **asdict(e),
        "amount_usd": format_usd(e.amount_nanos) if e.amount_nanos is not None else None,
    }


# --- per-key rate limits ---


def set_key_limits(
    store: PrincipalStore,
    ref: str,
    *,
    rpm: int | None = None,
    tpm: int | None = None,
    concurrency: int | None = None,
) -> dict[str, Any]:
    """Set a key's limits: a limit left out stays as it is, 0 removes it."""
    for flag, value in (("rpm", rpm), ("tpm", tpm), ("concurrency", concurrency)):
        if value is not None and value < 0:
            raise ValueError(f"--{flag} must be 0 (no limit) or more, got {value}")
    key = find_key(store, ref)
    old, new = (key.rpm_limit, key.tpm_limit, key.concurrency_limit), (rpm, tpm, concurrency)
    rpm, tpm, concurrency = (was if now is None else now or None for now, was in zip(new, old, strict=True))
    store.set_key_limits(key.id, rpm, tpm, concurrency)
    return key_limits_view(find_key(store, key.id))


def find_key(store: PrincipalStore, ref: str) -> ApiKey:
    """A key by id, name or prefix (revoked ones included, as the store matches them too)."""
    matches = [k for k in store.list_keys(include_revoked=True) if ref in (k.id, k.name, k.key_prefix)]
    if not matches:
        raise NotFound(f"no key named {ref!r}")
    if len(matches) > 1:
        raise Conflict(f"{len(matches)} keys match {ref!r}; use the id")
    return matches[0]


def key_limits_view(key: ApiKey) -> dict[str, Any]:
    fields = ("id", "name", "key_prefix", "rpm_limit", "tpm_limit", "concurrency_limit")
    return {name.removeprefix("key_"): getattr(key, name) for name in fields}


# --- recommendations ---


class HistorySource(SpendStore, NameStore, Protocol):
    """What recommendations read: daily spend and the names of teams."""


def recommend_budgets(
    store: HistorySource,
    *,
    days: int = 60,
    by: Sequence[str] = ("team",),
    min_usd: str | Decimal | int = 1,
    now: datetime | None = None,
) -> list[Recommendation]:
    """Proposed monthly budgets from the last `days` whole UTC days of the ledger."""
    if not 1 <= days <= 366:
        raise ValueError(f"--days must be 1..366, got {days}")
    if not by or any(group not in RECOMMEND_BY for group in by):
        raise ValueError(f"--by must be team or use_case, got {', '.join(by) or 'nothing'}")
    min_nanos = parse_usd(min_usd, "--min-usd", zero_ok=True)
    first_day = (now or datetime.now(UTC)).astimezone(UTC).date() - timedelta(days=days)
    rows = [row for group in dict.fromkeys(by) for row in daily_spend(store, group, first_day, days)]
    return recommend(rows, window_start=first_day, days=days, min_baseline_nanos=min_nanos)


def daily_spend(store: HistorySource, by: str, first_day: date, days: int) -> list[DailySpend]:
    """Spend per group per UTC day, in one grouped query over the daily rollup."""
    column = RECOMMEND_BY[by].column
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    rows = store.sum_grouped(["day", column], ["cost_nanos"], iso(start), iso(start + timedelta(days=days)))
    names = store.names(by) if by in NAMED else {}
    out = []
    for row in sorted(rows, key=lambda r: (r["day"], str(r[column]))):
        value = row[column]
        if value is None:  # calls with no team: no one to give a budget to
            continue
        day = date.fromisoformat(row["day"])
        out.append(DailySpend(by, str(value), names.get(value, str(value)), day, int(row["cost_nanos"] or 0)))
    return out


def local_time(text: str, zone: ZoneInfo) -> str:
    """An ISO date/datetime as ledger UTC; without an offset it is read in `zone`."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO date or datetime: {text!r} (e.g. 2026-11-01)") from None
    return iso(moment if moment.tzinfo else moment.replace(tzinfo=zone))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (e.g. Europe/Berlin, America/New_York, UTC)") from None
