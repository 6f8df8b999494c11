"""The spend domain of the store: the ledger's calls summed per group and period, from the daily
rollups where whole days allow (`store/sql_ledger.py`, `sql_rollups.py`, `sql_alerts.py`,
`sql_finance.py`). Groups are the names in `dimensions.py`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


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

    def spend(self, by: str, since: str | None, until: str | None) -> list[dict[str, Any]]: ...
    def savings(self, by: str, since: str | None, until: str | None) -> list[dict[str, Any]]:
        """Per group (team|use_case|rule|model): id, name, requests, routed_requests, cost_nanos and
        counterfactual_nanos (what the calls would have cost on the models asked for)."""
        ...

    def spend_daily(self, by: str, since: str, until: str) -> list[dict[str, Any]]:
        """Spend per group value (any `spend --by` group but session) and UTC day: value, day,
        requests, cost_nanos."""
        ...

    def spend_by_month(self, by: str, since: str, until: str) -> list[dict[str, Any]]:
        """Ledger spend per group value (team id or use case) and UTC month: value, month, cost_nanos."""
        ...

    def spend_hourly(
        self, by: str, since: str, until: str, where: tuple[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Spend per group value and UTC hour ('2026-11-28T16'): rows of value, hour, cost_nanos."""
        ...

    def spend_totals(
        self, by: str, since: str, until: str, where: tuple[str, str] | None = None
    ) -> dict[str | None, int]: ...
    def tagged_spend(self, keys: Sequence[str], since: str, until: str) -> list[dict[str, Any]]: ...
