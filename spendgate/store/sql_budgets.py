"""Budget, exemption and rate-limit queries, part of the shared SQL store."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import orjson

from spendgate.clock import utc_now_iso
from spendgate.dimensions import SCOPE_BY
from spendgate.store.base import Conflict, NotFound
from spendgate.store.budgets import (
    DEFAULT_TIERS,
    PERIODS,
    SCOPE_TYPES,
    Budget,
    BudgetEvent,
    CrossedTier,
    Exemption,
    Tier,
    WouldBlock,
)
from spendgate.store.sql_rollups import RollupQueries


class BudgetQueries(RollupQueries):  # reads the rollups through sum_grouped
    # --- budgets ---
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
    ) -> Budget:
        if scope_type not in SCOPE_TYPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPE_TYPES)}")
        if period not in PERIODS:
            raise ValueError(f"period must be one of {', '.join(PERIODS)}")
        if period == "fixed" and not (window_start and window_end):
            raise ValueError("a fixed period needs a window start and end")
        if mode not in ("enforce", "observe"):
            raise ValueError("mode must be enforce or observe")
        if amount_nanos <= 0:
            raise ValueError("a budget's amount must be positive")
        table = SCOPE_BY[scope_type].names_table if scope_type in SCOPE_BY else None
        if table is not None:
            # Names are friendlier on the command line; the ledger holds ids.
            scope_value = self._resolve(table, scope_value, scope_type)["id"]
        if scope_type == "tag" and "=" not in scope_value:
            raise ValueError("a tag scope is key=value, e.g. use_case=autonomous-agent")
        budget = Budget(
            id=f"bud_{secrets.token_hex(8)}",
            name=name,
            scope_type=scope_type,
            scope_value=scope_value,
            amount_nanos=amount_nanos,
            period=period,
            timezone=_check_zone(timezone),
            tiers=tuple(tiers) if tiers else DEFAULT_TIERS,
            mode=mode,
            window_start=window_start,
            window_end=window_end,
            created_at=utc_now_iso(),
        )
        self._write(
            "INSERT INTO budgets (id, name, scope_type, scope_value, amount_nanos, period, window_start,"
            " window_end, timezone, tiers, mode, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                budget.id,
                name,
                budget.scope_type,
                budget.scope_value,
                amount_nanos,
                period,
                window_start,
                window_end,
                budget.timezone,
                _tiers_json(budget.tiers),
                mode,
                budget.created_at,
            ),
            what=f"a budget named {name!r}",
        )
        return budget

    def list_budgets(self, include_revoked: bool = False) -> list[Budget]:
        where = "" if include_revoked else "WHERE revoked_at IS NULL"
        return [_budget(r) for r in self._query(f"SELECT * FROM budgets {where} ORDER BY created_at, id")]

    def get_budget(self, ref: str) -> Budget:
        return _budget(self._resolve("budgets", ref, "budget"))

    def revoke_budget(self, ref: str) -> Budget:
        row = self._resolve("budgets", ref, "budget")
        self._write(
            "UPDATE budgets SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (utc_now_iso(), row["id"])
        )
        return self.get_budget(row["id"])

    def budget_spend(
        self, scope_type: str, scope_value: str, since: str, until: str, session_id: str | None = None
    ) -> int:
        """Settled spend in a budget's scope and period (seeds counters; budget-versus-actual).
        Attribution scopes read the daily rollup (partial days from the ledger); sessions and
        free-form tags read the ledger."""
        if scope_type in SCOPE_BY:
            column = SCOPE_BY[scope_type].column
            rows = self.sum_grouped([], ["cost_nanos"], since, until, {column: scope_value})
            return int(rows[0]["cost_nanos"]) if rows else 0
        clauses = ["started_at >= ?", "started_at < ?"]
        params: list[Any] = [since, until]
        if scope_type == "session":
            clauses.append("session_id = ?")
            params.append(session_id or scope_value)
        elif scope_type == "tag":
            key, _, value = scope_value.partition("=")
            if key == "use_case":
                clauses.append("use_case = ?")
                params.append(value)
            else:
                clauses.append("tags LIKE ?")
                params.append("%" + orjson.dumps({key: value}).decode()[1:-1] + "%")
        else:
            raise ValueError(f"no budget scope {scope_type!r}")
        rows = self._query(f"SELECT SUM(cost_nanos) AS s FROM ledger WHERE {' AND '.join(clauses)}", params)
        return int(rows[0]["s"] or 0)

    # --- tier events ---
    def insert_budget_events(self, events: Sequence[BudgetEvent]) -> None:
        for e in events:
            self._write(
                "INSERT INTO budget_events (budget_id, period_key, tier, percent, spend_nanos, limit_nanos,"
                " request_id, observed, crossed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (budget_id, period_key, tier) DO NOTHING",
                (
                    e.budget_id,
                    e.period_key,
                    e.tier,
                    e.percent,
                    e.spend_nanos,
                    e.limit_nanos,
                    e.request_id,
                    int(e.observed),
                    e.crossed_at,
                ),
            )

    def list_budget_events(self, since: str | None = None) -> list[CrossedTier]:
        where, params = ("WHERE e.crossed_at >= ?", [since]) if since else ("", [])
        rows = self._query(
            "SELECT e.*, b.name AS budget, b.scope_type, b.scope_value FROM budget_events e "
            f"JOIN budgets b ON b.id = e.budget_id {where} ORDER BY e.crossed_at",
            params,
        )
        return [CrossedTier(**{**r, "observed": bool(r["observed"])}) for r in rows]

    def would_block(self, since: str | None = None, until: str | None = None) -> list[WouldBlock]:
        """Calls that observation mode let through although a budget would have blocked them."""
        clauses, params = ["budget_note LIKE ?"], ["%would_block:%"]
        if since:
            clauses.append("started_at >= ?")
            params.append(since)
        if until:
            clauses.append("started_at < ?")
            params.append(until)
        rows = self._query(
            "SELECT budget_note, COUNT(*) AS requests, SUM(cost_nanos) AS cost_nanos,"
            " MIN(started_at) AS first,"
            f" MAX(started_at) AS last FROM ledger WHERE {' AND '.join(clauses)} GROUP BY budget_note"
            " ORDER BY requests DESC",
            params,
        )
        return [
            WouldBlock(r["budget_note"], int(r["requests"]), int(r["cost_nanos"] or 0), r["first"], r["last"])
            for r in rows
        ]

    # --- exemptions ---
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
    ) -> Exemption:
        if (amount_nanos is None) == (percent is None):
            raise ValueError("an exemption gives either an amount or a percentage")
        if ends_at <= starts_at:
            raise ValueError("an exemption's window must end after it starts")
        if not reason.strip():
            raise ValueError("an exemption needs a reason")
        target = self.get_budget(budget)
        exemption = Exemption(
            id=f"exm_{secrets.token_hex(8)}",
            budget_id=target.id,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason,
            requested_by=requested_by,
            requested_at=utc_now_iso(),
            status="pending",
            amount_nanos=amount_nanos,
            percent=percent,
            use_case=use_case,
        )
        self._write(
            "INSERT INTO exemptions (id, budget_id, amount_nanos, percent, use_case, starts_at, ends_at,"
            " reason,"
            " requested_by, requested_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                exemption.id,
                target.id,
                amount_nanos,
                percent,
                use_case,
                starts_at,
                ends_at,
                reason,
                requested_by,
                exemption.requested_at,
                "pending",
            ),
        )
        return exemption

    def decide_exemption(
        self, ref: str, *, approve: bool, decided_by: str, note: str | None = None
    ) -> Exemption:
        rows = self._query("SELECT * FROM exemptions WHERE id = ?", (ref,))
        if not rows:
            raise NotFound(f"no exemption {ref!r}")
        if rows[0]["status"] != "pending":
            raise Conflict(f"exemption {ref} was already {rows[0]['status']}")
        if rows[0]["requested_by"] == decided_by:
            raise Conflict("an exemption cannot be approved or denied by the person who requested it")
        self._write(
            "UPDATE exemptions SET status = ?, decided_by = ?, decided_at = ?, decision_note = ?"
            " WHERE id = ?",
            ("approved" if approve else "denied", decided_by, utc_now_iso(), note, ref),
        )
        return Exemption(**self._query("SELECT * FROM exemptions WHERE id = ?", (ref,))[0])

    def list_exemptions(self, status: str | None = None) -> list[Exemption]:
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        return [
            Exemption(**r)
            for r in self._query(f"SELECT * FROM exemptions {where} ORDER BY requested_at", params)
        ]


def _tiers_json(tiers: Sequence[Tier]) -> str:
    return orjson.dumps([{"name": t.name, "percent": t.percent, "action": t.action} for t in tiers]).decode()


def _budget(row: dict[str, Any]) -> Budget:
    item = dict(row)
    item["tiers"] = tuple(Tier(**t) for t in orjson.loads(item["tiers"]))
    return Budget(**item)


def _check_zone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (e.g. Europe/Berlin, America/New_York, UTC)") from None
    return name
