"""The spend domain of the store: the ledger's calls summed per group and period, from the daily
rollups where whole days allow (`store/sql_ledger.py`, `sql_rollups.py`, `sql_alerts.py`,
`sql_finance.py`). Groups are the names in `dimensions.py`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class SpendByGroup:
    """One group's calls, tokens (`models.TOKEN_COLUMNS`) and cost; `name` is the id's display name
    for named dimensions (the id when unknown), else the value itself."""

    id: str | None
    name: str | None
    requests: int
    input_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    cache_read_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_nanos: int
    estimated_requests: int


@dataclass(frozen=True, slots=True)
class SavingsByGroup:
    """What a group's calls cost, and would have cost on the models asked for."""

    id: str | None
    name: str | None
    requests: int
    routed_requests: int
    cost_nanos: int
    counterfactual_nanos: int


@dataclass(frozen=True, slots=True)
class UsageBucket:
    """A group's calls of one UTC day, batch or not, in one input band, their usage summed: what
    pricing them on another model needs (`spendgate savings --baseline MODEL`). `band` counts the
    thresholds asked for that the calls' total input (uncached + cache writes + reads) exceeded."""

    id: str | None
    name: str | None
    day: str  # UTC, 2026-11-28
    batch: bool
    band: int
    requests: int
    routed_requests: int
    input_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    cache_read_tokens: int
    output_tokens: int
    web_search_requests: int
    cost_nanos: int


@dataclass(frozen=True, slots=True)
class SpendByDay:
    value: str | None  # the group's value (an id for named dimensions)
    day: str  # UTC, 2026-11-28
    requests: int
    cost_nanos: int


@dataclass(frozen=True, slots=True)
class SpendByMonth:
    value: str | None
    month: str  # UTC, 2026-11
    requests: int
    cost_nanos: int


@dataclass(frozen=True, slots=True)
class SpendByHour:
    value: str | None
    hour: str  # UTC, 2026-11-28T16
    cost_nanos: int


@dataclass(frozen=True, slots=True)
class TaggedSpend:
    """Calls carrying work tags (repo, pr, branch) in one UTC month and team."""

    month: str
    team_id: str | None
    requests: int
    cost_nanos: int
    tags: dict[str, str] = field(default_factory=dict)  # the work tags the calls carried


class SpendStore(Protocol):
    """Grouped spend, read-only. Methods are blocking."""

    def sum_grouped(
        self,
        groups: Sequence[str],
        measures: Sequence[str],
        since: str | None,
        until: str | None,
        where: Mapping[str, str | None] | None = None,
    ) -> list[dict[str, Any]]:
        """Sums of rollup measures per distinct value of rollup key columns (or `day`) over calls
        started in [since, until): whole days from the daily rollup, partial days from the ledger."""
        ...

    def spend(self, by: str, since: str | None, until: str | None) -> list[SpendByGroup]:
        """Per value of a `dimensions.SPEND_BY` group, most expensive first."""
        ...

    def savings(self, by: str, since: str | None, until: str | None) -> list[SavingsByGroup]:
        """Per group (team|use_case|rule|model): id, name, requests, routed_requests, cost_nanos and
        counterfactual_nanos (what the calls would have cost on the models asked for)."""
        ...

    def usage_buckets(
        self, by: str, since: str | None, until: str | None, thresholds: Sequence[int] = ()
    ) -> list[UsageBucket]:
        """Usage per savings group (team|use_case|rule|model), UTC day, batch or not and input band
        (by `thresholds`, ascending): from the daily rollups when there are no thresholds, else from
        the raw ledger (a band is a property of each call, which the rollups do not keep)."""
        ...

    def spend_daily(self, by: str, since: str, until: str) -> list[SpendByDay]:
        """Spend per group value (any `spend --by` group but session) and UTC day: value, day,
        requests, cost_nanos."""
        ...

    def spend_by_month(self, by: str, since: str, until: str) -> list[SpendByMonth]:
        """Ledger spend per group value (team id or use case) and UTC month: value, month, cost_nanos."""
        ...

    def spend_hourly(
        self, by: str, since: str, until: str, where: tuple[str, str] | None = None
    ) -> list[SpendByHour]:
        """Spend per group value and UTC hour ('2026-11-28T16'): rows of value, hour, cost_nanos."""
        ...

    def spend_totals(
        self, by: str, since: str, until: str, where: tuple[str, str] | None = None
    ) -> dict[str | None, int]: ...
    def tagged_spend(self, keys: Sequence[str], since: str, until: str) -> list[TaggedSpend]: ...
