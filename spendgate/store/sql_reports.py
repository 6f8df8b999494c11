"""Report queries, part of the shared SQL store: what a chargeback needs, from the daily rollup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from spendgate.dimensions import select
from spendgate.store.reports import ReportRun
from spendgate.store.sql_rollups import RollupQueries

# One chargeback line per (day, attribution, model, price) before it is split by token type.
_CHARGEBACK_BY = select(
    "org",
    "team",
    "cost_center",
    "use_case",
    "use_case_source",  # declared or inferred (the chargeback says how much of a use case was inferred)
    "provider",
    "requested_model",
    "model",
    "pricing_tier",
    "price_ref",
)
CHARGEBACK_GROUPS = ("day", *(d.column for d in _CHARGEBACK_BY.values()))
CHARGEBACK_MEASURES = (
    "requests",
    "input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "output_tokens",
    "web_search_requests",
    "cost_nanos",
)


class ReportQueries(RollupQueries):  # reads the rollups through sum_grouped
    def chargeback_rows(self, since: str, until: str) -> list[dict[str, Any]]:
        """Spend of calls started in [since, until) per UTC day, org, team, cost center, use case
        and its source, provider, models, pricing tier and price, with request and token counts,
        plus `org_name` and `team_name` (the id when the org or team is unknown); oldest day first."""
        rows = self.sum_grouped(CHARGEBACK_GROUPS, CHARGEBACK_MEASURES, since, until)
        orgs = self.names("org")
        teams = self.names("team")
        for row in rows:
            row["org_name"] = orgs.get(row["org_id"], row["org_id"])
            row["team_name"] = teams.get(row["team_id"], row["team_id"])
        return sorted(rows, key=lambda r: tuple("" if r[g] is None else str(r[g]) for g in CHARGEBACK_GROUPS))

    # --- scheduled report runs ---
    def claim_report_run(
        self, *, entry: str, period: str, report: str, now: str, by: str, stale_before: str
    ) -> bool:
        """Claim (entry, period) for this process: True when it is ours to make. A claim that is
        still running but older than `stale_before` (its process died) is taken over."""
        if self._changed(
            "INSERT INTO report_runs (entry, period, report, status, claimed_at, claimed_by)"
            " VALUES (?, ?, ?, 'running', ?, ?) ON CONFLICT (entry, period) DO NOTHING",
            (entry, period, report, now, by),
        ):
            return True
        return bool(
            self._changed(
                "UPDATE report_runs SET claimed_at = ?, claimed_by = ? WHERE entry = ? AND period = ?"
                " AND status = 'running' AND claimed_at < ?",
                (now, by, entry, period, stale_before),
            )
        )

    def finish_report_run(
        self, *, entry: str, period: str, finished_at: str, files: Sequence[str], emailed: Sequence[str]
    ) -> None:
        self._write(
            "UPDATE report_runs SET status = 'done', finished_at = ?, files = ?, emailed = ?"
            " WHERE entry = ? AND period = ?",
            (
                finished_at,
                orjson.dumps(list(files)).decode(),
                orjson.dumps(list(emailed)).decode(),
                entry,
                period,
            ),
        )

    def release_report_run(self, *, entry: str, period: str) -> None:
        """Drop an unfinished claim (the run failed): the next pass tries again."""
        self._write(
            "DELETE FROM report_runs WHERE entry = ? AND period = ? AND status = 'running'", (entry, period)
        )

    def list_report_runs(self) -> list[ReportRun]:
        rows = self._query("SELECT * FROM report_runs ORDER BY claimed_at, entry, period")
        return [
            ReportRun(**{**r, "files": orjson.loads(r["files"]), "emailed": orjson.loads(r["emailed"])})
            for r in rows
        ]
