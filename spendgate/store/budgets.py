"""The budgets domain of the store: budgets, their tier events, exemptions and key rate limits
(`store/sql_budgets.py` implements it). The rows are the budget's data; `budgets/model.py` adds
their periods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

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


@dataclass(frozen=True, slots=True)
class CrossedTier:
    """A recorded tier crossing with its budget's name and scope (`list_budget_events`)."""

    budget_id: str
    period_key: str
    tier: str
    percent: int
    spend_nanos: int
    limit_nanos: int
    request_id: str | None
    observed: bool
    crossed_at: str
    budget: str
    scope_type: str
    scope_value: str


@dataclass(frozen=True, slots=True)
class WouldBlock:
    """Calls observation mode let through that the budgets in `budget_note` would have blocked."""

    budget_note: str
    requests: int
    cost_nanos: int
    first: str  # started_at of the first and last such call
    last: str


class BudgetStore(Protocol):
    """Budgets, tier events, exemptions and key limits. Methods are blocking."""

    def create_budget(
        self,
        *,
        name: str,
        scope_type: str,
        scope_value: str,
        amount_nanos: int,
        period: str = "month",
        timezone: str = "UTC",
        tiers: Sequence[Tier] | None = None,
        mode: str = "enforce",
        window_start: str | None = None,
        window_end: str | None = None,
    ) -> Budget: ...
    def list_budgets(self, include_revoked: bool = False) -> list[Budget]: ...
    def get_budget(self, ref: str) -> Budget: ...
    def revoke_budget(self, ref: str) -> Budget: ...
    def budget_spend(
        self, scope_type: str, scope_value: str, since: str, until: str, session_id: str | None = None
    ) -> int: ...
    def list_budget_events(self, since: str | None = None) -> list[CrossedTier]: ...
    def would_block(self, since: str | None = None, until: str | None = None) -> list[WouldBlock]: ...
    def create_exemption(
        self,
        *,
        budget: str,
        starts_at: str,
        ends_at: str,
        reason: str,
        requested_by: str,
        amount_nanos: int | None = None,
        percent: int | None = None,
        use_case: str | None = None,
    ) -> Exemption: ...
    def decide_exemption(
        self, ref: str, *, approve: bool, decided_by: str, note: str | None = None
    ) -> Exemption: ...
    def list_exemptions(self, status: str | None = None) -> list[Exemption]: ...
