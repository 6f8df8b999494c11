"""Budgets as data: scope, amount, period (in a time zone) and tiers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from spendgate.clock import iso
from spendgate.dimensions import SCOPE_BY

# The scopes that are one ledger column (dimensions.SCOPE_BY), then tags and sessions.
SCOPE_TYPES = (*SCOPE_BY, "tag", "session")
PERIODS = ("month", "week", "day", "fixed")
HARD = "hard"


@dataclass(frozen=True, slots=True)
class Tier:
    name: str  # alert, amber, hard (the hard tier is the limit that blocks)
    percent: int
    action: str | None = None  # e.g. "downgrade:fast" on amber, used by routing


DEFAULT_TIERS = (Tier("alert", 80), Tier("amber", 110), Tier(HARD, 150))


@dataclass(frozen=True, slots=True)
class Budget:
    id: str
    name: str
    scope_type: str
    scope_value: str
    amount_nanos: int
    period: str = "month"
    timezone: str = "UTC"
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    mode: str = "enforce"  # or "observe": record what would happen, block nothing
    window_start: str | None = None
    window_end: str | None = None
    created_at: str = ""
    revoked_at: str | None = None

    @property
    def hard_percent(self) -> int:
        return next((t.percent for t in self.tiers if t.name == HARD), 100)

    def limit_nanos(self, extra_nanos: int = 0) -> int:
        """Spend at which calls are refused: the hard tier of the budget, plus exemptions."""
        return self.amount_nanos * self.hard_percent // 100 + extra_nanos

    def scope_label(self) -> str:
        return f"{self.scope_type}:{self.scope_value}"


@dataclass(frozen=True, slots=True)
class Window:
    key: str  # names the period, e.g. 2026-11 / 2026-W48 / 2026-11-28 / fixed
    start: datetime
    end: datetime

    @property
    def start_iso(self) -> str:
        return iso(self.start)

    @property
    def end_iso(self) -> str:
        return iso(self.end)


def window_for(budget: Budget, now: datetime) -> Window | None:
    """The budget's current period; None for a fixed window we are outside of.

    Boundaries are local midnights in the budget's time zone, so spend rolls over by itself.
    """
    if budget.period == "fixed":
        assert budget.window_start and budget.window_end
        start = _parse(budget.window_start)
        end = _parse(budget.window_end)
        return Window("fixed", start, end) if start <= now < end else None
    zone = ZoneInfo(budget.timezone)
    local = now.astimezone(zone)
    if budget.period == "day":
        start_local = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end_local = _midnight(start_local.date() + timedelta(days=1), zone)
        key = start_local.strftime("%Y-%m-%d")
    elif budget.period == "week":
        monday = local.date() - timedelta(days=local.weekday())
        start_local = _midnight(monday, zone)
        end_local = _midnight(monday + timedelta(days=7), zone)
        year, week, _ = monday.isocalendar()
        key = f"{year}-W{week:02d}"
    else:  # month
        first = local.date().replace(day=1)
        start_local = _midnight(first, zone)
        next_first = (first + timedelta(days=32)).replace(day=1)
        end_local = _midnight(next_first, zone)
        key = first.strftime("%Y-%m")
    return Window(key, start_local.astimezone(UTC), end_local.astimezone(UTC))


@dataclass(frozen=True, slots=True)
class Exemption:
    id: str
    budget_id: str
    starts_at: str
    ends_at: str
    reason: str
    requested_by: str
    requested_at: str
    status: str  # pending, approved, denied
    amount_nanos: int | None = None
    percent: int | None = None
    use_case: str | None = None
    decided_by: str | None = None
    decided_at: str | None = None
    decision_note: str | None = None

    def headroom_nanos(self, budget: Budget) -> int:
        if self.amount_nanos is not None:
            return self.amount_nanos
        return budget.amount_nanos * (self.percent or 0) // 100

    def active(self, now_iso: str, use_case: str) -> bool:
        return (
            self.status == "approved"
            and self.starts_at <= now_iso < self.ends_at
            and (self.use_case is None or self.use_case == use_case)
        )


@dataclass(slots=True)
class BudgetEvent:
    budget_id: str
    period_key: str
    tier: str
    percent: int
    spend_nanos: int
    limit_nanos: int
    crossed_at: str
    request_id: str | None = None
    observed: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def _midnight(day: object, zone: ZoneInfo) -> datetime:
    from datetime import date

    assert isinstance(day, date)
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
