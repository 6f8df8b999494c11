"""The alerts domain of the store: alerts opened once across replicas, and their deliveries
(`store/sql_alerts.py` implements it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    alert_key: str  # unique: the claim that makes replicas open an alert once
    kind: str  # anomaly, budget, forecast
    group_by: str
    group_value: str
    day: str
    status: str  # open, resolved
    summary: str
    details: dict[str, Any]
    opened_at: str
    resolved_at: str | None
    resolve_note: str | None


@dataclass(frozen=True, slots=True)
class AlertDelivery:
    alert_id: str
    channel: str
    action: str  # trigger, resolve
    attempt: int
    status: str  # delivered, failed
    http_status: int | None
    error: str | None
    at: str


class AlertStore(Protocol):
    """Alerts and deliveries. Methods are blocking."""

    def open_alert(
        self,
        *,
        alert_key: str,
        kind: str,
        group_by: str,
        group_value: str,
        day: str,
        summary: str,
        details: dict[str, Any],
        opened_at: str,
    ) -> str | None:
        """The new alert's id, or None when an alert with this key already exists."""
        ...

    def resolve_alert(self, alert_id: str, resolved_at: str, note: str) -> bool: ...
    def list_alerts(
        self, status: str | None = None, kind: str | None = None, since: str | None = None
    ) -> list[Alert]: ...
    def alert_keys(self, keys: Sequence[str]) -> set[str]: ...
    def record_alert_delivery(
        self,
        *,
        alert_id: str,
        channel: str,
        action: str,
        attempt: int,
        status: str,
        at: str,
        http_status: int | None = None,
        error: str | None = None,
    ) -> None: ...
    def list_alert_deliveries(self, alert_id: str | None = None) -> list[AlertDelivery]: ...
