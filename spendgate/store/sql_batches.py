"""Message Batch queries, part of the shared SQL store: who created a batch, and its metering claim."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from spendgate.models import MessageBatch
from spendgate.store.sql_mixin import QueryMixin

_COLUMNS = tuple(MessageBatch.__dataclass_fields__)


def _batch(row: dict[str, Any]) -> MessageBatch:
    return MessageBatch(**{**row, "tags": orjson.loads(row["tags"])})


class BatchQueries(QueryMixin):
    def insert_batch(self, batch: MessageBatch) -> None:
        values = [orjson.dumps(batch.tags).decode() if c == "tags" else getattr(batch, c) for c in _COLUMNS]
        self._changed(
            f"INSERT INTO message_batches ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
            " ON CONFLICT (batch_id) DO NOTHING",
            values,
        )

    def get_batch(self, batch_id: str) -> MessageBatch | None:
        rows = self._query("SELECT * FROM message_batches WHERE batch_id = ?", [batch_id])
        return _batch(rows[0]) if rows else None

    def batch_orgs(self, batch_ids: Sequence[str]) -> dict[str, str]:
        """The org that created each of these batches (batches not created through Spendgate are absent)."""
        if not batch_ids:
            return {}
        marks = ", ".join("?" for _ in batch_ids)
        rows = self._query(
            f"SELECT batch_id, org_id FROM message_batches WHERE batch_id IN ({marks})", batch_ids
        )
        return {r["batch_id"]: r["org_id"] for r in rows}

    def list_batches(self, *, unmetered: bool = False, limit: int = 100) -> list[MessageBatch]:
        where = "WHERE metered_at IS NULL " if unmetered else ""
        rows = self._query(f"SELECT * FROM message_batches {where}ORDER BY created_at DESC LIMIT ?", [limit])
        return [_batch(r) for r in rows]

    def claim_batch_metering(self, batch_id: str, *, by: str, now: str, calls: int, cost_nanos: int) -> bool:
        """Claim the right to write this batch's calls to the ledger: True for exactly one caller."""
        return bool(
            self._changed(
                "UPDATE message_batches SET metered_at = ?, metered_by = ?, metered_calls = ?,"
                " metered_cost_nanos = ? WHERE batch_id = ? AND metered_at IS NULL",
                (now, by, calls, cost_nanos, batch_id),
            )
        )
