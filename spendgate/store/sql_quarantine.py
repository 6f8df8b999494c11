"""Quarantined ledger rows, part of the shared SQL store: rows the database refused for good."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spendgate.clock import utc_now_iso
from spendgate.store.sql_mixin import QueryMixin


class QuarantineQueries(QueryMixin):
    def quarantine_ledger_rows(self, items: Sequence[tuple[str, str, str]]) -> int:
        """(request id, reason, row as ASCII JSON) each; a row already there is left as it is."""
        now = utc_now_iso()
        sql = self._sql(
            "INSERT INTO ledger_quarantine (request_id, quarantined_at, reason, row_json) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING"
        )
        with self._lock:
            return self._run_many(sql, [(rid, now, reason, row_json) for rid, reason, row_json in items])

    def quarantined_ledger_rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest first: request_id, quarantined_at, reason, row_json."""
        sql = "SELECT * FROM ledger_quarantine ORDER BY quarantined_at DESC, request_id"
        if limit is None:
            return self._query(sql)
        return self._query(f"{sql} LIMIT ?", (limit,))
