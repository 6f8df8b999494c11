"""The Message Batches domain of the store: who created each batch, and the claim that lets exactly
one results fetch write its calls to the ledger (`store/sql_batches.py` implements it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from spendgate.models import MessageBatch


class BatchStore(Protocol):
    """Batches created through Spendgate. Methods are blocking: call them off the event loop."""

    def insert_batch(self, batch: MessageBatch) -> None:
        """Remember a new batch (a replayed insert of the same id changes nothing)."""
        ...

    def get_batch(self, batch_id: str) -> MessageBatch | None: ...

    def batch_orgs(self, batch_ids: Sequence[str]) -> dict[str, str]:
        """The org that created each batch; batches not created through Spendgate are absent."""
        ...

    def list_batches(self, *, unmetered: bool = False, limit: int = 100) -> list[MessageBatch]:
        """Newest first; `unmetered`: only those whose results have not been metered yet."""
        ...

    def claim_batch_metering(self, batch_id: str, *, by: str, now: str, calls: int, cost_nanos: int) -> bool:
        """True for exactly one caller: the one that writes the batch's calls to the ledger."""
        ...
