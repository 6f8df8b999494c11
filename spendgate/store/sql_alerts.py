"""Alert queries, part of the shared SQL store: hourly spend series and the alerts tables.

Claims are single statements whose row count says who won (`INSERT ... ON CONFLICT DO NOTHING`,
`UPDATE ... WHERE status = 'open'`), so replicas running the same check never double-send.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import orjson

from spendgate.dimensions import ALERT_BY, CONTRIBUTOR_BY, ROLLUP_KEYS
from spendgate.store.alerts import Alert, AlertDelivery
from spendgate.store.spend import SpendByHour
from spendgate.store.sql_rollups import RollupQueries


def _column(name: str) -> str:
    """The ledger column of a dimension an alert groups or filters by."""
    dimension = ALERT_BY.get(name) or CONTRIBUTOR_BY.get(name)
    if dimension is None:
        raise ValueError(f"cannot group alerts by {name!r}")
    return dimension.column


class AlertQueries(RollupQueries):  # reads the rollups through sum_grouped
    # --- spend series ---
    def spend_hourly(
        self, by: str, since: str, until: str, where: tuple[str, str] | None = None
    ) -> list[SpendByHour]:
        """Spend per group value and UTC hour ('2026-11-28T16')."""
        column = _column(by)
        clauses, params = ["started_at >= ?", "started_at < ?"], [since, until]
        if where is not None:
            clauses.append(f"{_column(where[0])} = ?")
            params.append(where[1])
        rows = self._query(
            f"SELECT {column} AS value, SUBSTR(started_at, 1, 13) AS hour, SUM(cost_nanos) AS cost_nanos "
            f"FROM ledger WHERE {' AND '.join(clauses)} GROUP BY {column}, SUBSTR(started_at, 1, 13)",
            params,
        )
        return [SpendByHour(r["value"], r["hour"], int(r["cost_nanos"] or 0)) for r in rows]

    def spend_totals(
        self, by: str, since: str, until: str, where: tuple[str, str] | None = None
    ) -> dict[str | None, int]:
        """Spend per group value in [since, until), optionally only where a column has a value.
        From the daily rollup (plus the raw ledger for partial days), except by session."""
        column = _column(by)
        filters = {} if where is None else {_column(where[0]): where[1]}
        if column in ROLLUP_KEYS and all(c in ROLLUP_KEYS for c in filters):
            rows = self.sum_grouped([column], ["cost_nanos"], since, until, filters)
            return {r[column]: int(r["cost_nanos"] or 0) for r in rows}
        clauses, params = ["started_at >= ?", "started_at < ?"], [since, until]
        for col, value in filters.items():
            clauses.append(f"{col} = ?")
            params.append(value)
        rows = self._query(
            f"SELECT {column} AS value, SUM(cost_nanos) AS cost_nanos FROM ledger "
            f"WHERE {' AND '.join(clauses)} GROUP BY {column}",
            params,
        )
        return {r["value"]: int(r["cost_nanos"] or 0) for r in rows}

    # --- alerts ---
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
        """Record a new alert; its id, or None when an alert with this key exists (someone else won)."""
        alert_id = f"alr_{secrets.token_hex(8)}"
        changed = self._changed(
            "INSERT INTO alerts (id, alert_key, kind, group_by, group_value, day, status, summary, details,"
            " opened_at) VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?, ?) ON CONFLICT (alert_key) DO NOTHING",
            (alert_id, alert_key, kind, group_by, group_value, day, summary, _json(details), opened_at),
        )
        return alert_id if changed else None

    def resolve_alert(self, alert_id: str, resolved_at: str, note: str) -> bool:
        """Mark an open alert resolved; False when it was not open (another replica resolved it)."""
        changed = self._changed(
            "UPDATE alerts SET status = 'resolved', resolved_at = ?, resolve_note = ?"
            " WHERE id = ? AND status = 'open'",
            (resolved_at, note, alert_id),
        )
        return changed > 0

    def list_alerts(
        self, status: str | None = None, kind: str | None = None, since: str | None = None
    ) -> list[Alert]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("status", status), ("kind", kind)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            clauses.append("opened_at >= ?")
            params.append(since)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(f"SELECT * FROM alerts {where} ORDER BY opened_at, id", params)
        return [Alert(**{**r, "details": orjson.loads(r["details"])}) for r in rows]

    def alert_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of these alert keys already exist."""
        if not keys:
            return set()
        marks = ", ".join("?" for _ in keys)
        rows = self._query(f"SELECT alert_key FROM alerts WHERE alert_key IN ({marks})", list(keys))
        return {r["alert_key"] for r in rows}

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
    ) -> None:
        self._write(
            "INSERT INTO alert_deliveries (alert_id, channel, action, attempt, status, http_status, error,"
            " at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (alert_id, channel, action, attempt) DO NOTHING",
            (alert_id, channel, action, attempt, status, http_status, (error or "")[:500] or None, at),
        )

    def list_alert_deliveries(self, alert_id: str | None = None) -> list[AlertDelivery]:
        where, params = ("WHERE alert_id = ?", [alert_id]) if alert_id else ("", [])
        rows = self._query(
            f"SELECT * FROM alert_deliveries {where} ORDER BY at, alert_id, channel, action, attempt", params
        )
        return [AlertDelivery(**r) for r in rows]


def _json(value: dict[str, Any]) -> str:
    return orjson.dumps(value, default=str).decode()
