"""The ledger domain of the store: one row per call in (with the budget tier crossings the calls
caused), rows out, and the rollups kept in step (`store/sql_ledger.py`, `store/sql_rollups.py`;
tier events: `store/sql_budgets.py`; rows refused for good: `store/sql_quarantine.py`)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Generator, Sequence
from typing import Any, Protocol

import orjson

from spendgate.models import LEDGER_COLUMNS, LedgerRow
from spendgate.store.budgets import BudgetEvent


class LedgerStore(Protocol):
    """The ledger writer's and `spendgate ledger`'s part. Methods are blocking."""

    def insert_ledger_rows(self, rows: Sequence[LedgerRow]) -> int:
        """Insert rows, ignoring request ids already present (replays are idempotent)."""
        ...

    def insert_ledger_values(self, rows: Sequence[list[Any]]) -> int:
        """`insert_ledger_rows` for rows already as insert parameters (`ledger_values`: the columns
        in order, tags as JSON text, booleans as 0/1): the ingest process lands journal lines so,
        without a LedgerRow each."""
        ...

    def quarantine_ledger_rows(self, items: Sequence[tuple[str, str, str]]) -> int:
        """Keep rows the database refused for good: (request id, reason, row as ASCII JSON) each."""
        ...

    def quarantined_ledger_rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Quarantined rows, newest first: request_id, quarantined_at, reason, row_json."""
        ...

    def insert_budget_events(self, events: Sequence[BudgetEvent]) -> None:
        """Record tier crossings; one per (budget, period, tier), later duplicates ignored."""
        ...

    def ledger_rows(
        self, since: str | None = None, until: str | None = None, latest: int | None = None
    ) -> list[dict[str, Any]]:
        """Rows in the period, oldest first; only the `latest` N when given."""
        ...

    def ledger_row(self, request_id: str) -> dict[str, Any] | None:
        """One row by its request id (tags parsed), or None."""
        ...

    def iter_ledger_rows(
        self, since: str | None = None, until: str | None = None, batch: int = 2000
    ) -> Generator[dict[str, Any]]:
        """Every row in the period, oldest first, read `batch` at a time on a connection of its
        own (an export of millions of rows never holds them all); tags as a dict."""
        ...

    def rebuild_rollups(self, on_progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
        """Recompute the daily rollups from the ledger; counts of rollup rows and tagged calls.
        `on_progress(done, total)` hears each step (a UTC month of the ledger, then the rest)."""
        ...


# --- a row as insert parameters (`insert_ledger_values`), the same for every backend ---

_ROW_VALUES = operator.attrgetter(*LEDGER_COLUMNS)
_TAGS = LEDGER_COLUMNS.index("tags")
# Positions of the boolean columns (stored as 0/1)
BOOL_COLUMNS_AT = tuple(
    i for i, f in enumerate(LedgerRow.__dataclass_fields__.values()) if f.type in ("bool", bool)
)


def ledger_values(row: LedgerRow) -> list[Any]:
    """The row as insert parameters, in column order: tags as JSON text, booleans as 0/1."""
    fields = row.__dict__
    # A row's __dict__ holds its fields in column order (its __init__ and LedgerRow.of_call both
    # fill it so): copied in C, cheaper than reading 44 attributes one by one, which the writer
    # thread does while it holds the GIL. Checked, not assumed.
    if tuple(fields) == LEDGER_COLUMNS:
        values: list[Any] = list(fields.values())
    else:
        values = list(_ROW_VALUES(row))
    return as_parameters(values)


def as_parameters(values: list[Any]) -> list[Any]:
    """A row's values in column order -> its insert parameters, in place: tags as JSON text,
    booleans as 0/1."""
    values[_TAGS] = orjson.dumps(values[_TAGS]).decode()
    for i in BOOL_COLUMNS_AT:
        values[i] = int(values[i])
    return values


def row_of_parameters(parameters: Sequence[Any]) -> LedgerRow:
    """The row that `ledger_values` made these parameters of (to quarantine it whole)."""
    values = list(parameters)
    values[_TAGS] = orjson.loads(values[_TAGS])
    for i in BOOL_COLUMNS_AT:
        values[i] = bool(values[i])
    row = LedgerRow.__new__(LedgerRow)
    row.__dict__ = dict(zip(LEDGER_COLUMNS, values, strict=True))
    return row
