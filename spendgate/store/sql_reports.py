"""Report queries, part of the shared SQL store: what a chargeback needs, from the daily rollup."""

from __future__ import annotations

from typing import Any

from spendgate.store.sql_mixin import QueryMixin

# One chargeback line per (day, attribution, model, price) before it is split by token type.
CHARGEBACK_GROUPS = (
    "day",
    "org_id",
    "team_id",
    "cost_center",
    "use_case",
    "provider",
    "requested_model",
    "upstream_model",
    "pricing_tier",
    "price_ref",
)
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


class ReportQueries(QueryMixin):
    def chargeback_rows(self, since: str, until: str) -> list[dict[str, Any]]:
        """Spend of calls started in [since, until) per UTC day, org, team, cost center, use case,
        provider, models, pricing tier and price, with request and token counts, plus `org_name`
        and `team_name` (the id when the org or team is unknown); oldest day first."""
        rows = self.sum_grouped(CHARGEBACK_GROUPS, CHARGEBACK_MEASURES, since, until)
        orgs = {r["id"]: r["name"] for r in self._query("SELECT id, name FROM orgs")}
        teams = {r["id"]: r["name"] for r in self._query("SELECT id, name FROM teams")}
        for row in rows:
            row["org_name"] = orgs.get(row["org_id"], row["org_id"])
            row["team_name"] = teams.get(row["team_id"], row["team_id"])
        return sorted(rows, key=lambda r: tuple("" if r[g] is None else str(r[g]) for g in CHARGEBACK_GROUPS))
