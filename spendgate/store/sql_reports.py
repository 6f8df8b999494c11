"""Report queries, part of the shared SQL store: the ledger rows a chargeback needs, with names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_CHARGEBACK_COLUMNS = (
    "l.request_id, l.started_at, l.provider, l.upstream_model, l.requested_model, l.org_id, "
    "COALESCE(o.name, l.org_id) AS org_name, l.team_id, COALESCE(t.name, l.team_id) AS team_name, "
    "l.cost_center, l.use_case, l.input_tokens, l.cache_write_5m_tokens, l.cache_write_1h_tokens, "
    "l.cache_read_tokens, l.output_tokens, l.web_search_requests, l.cost_nanos, l.price_ref, l.pricing_tier"
)


class ReportQueries:
    # Provided by SQLStore.
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def chargeback_rows(self, since: str, until: str) -> list[dict[str, Any]]:
        """Ledger rows started in [since, until), oldest first, with only the columns a chargeback
        uses, plus `org_name` and `team_name` (the id when the org or team is unknown)."""
        return self._query(
            f"SELECT {_CHARGEBACK_COLUMNS} FROM ledger l "
            "LEFT JOIN orgs o ON o.id = l.org_id LEFT JOIN teams t ON t.id = l.team_id "
            "WHERE l.started_at >= ? AND l.started_at < ? ORDER BY l.started_at, l.request_id",
            (since, until),
        )
