"""The storage interface: one protocol per domain, and `Store`, all of them together.

A consumer annotates the narrowest domain it uses (a `BudgetStore`, a `SpendStore`, ...; a Protocol
that inherits two of them where it reads across domains); only the app factory and the CLI's
`cli_store()` hold the whole `Store`. One package per backend implements it (SQLite is the
default), through one set of SQL queries (`store/sql.py`). Nothing here imports a feature package.
"""

from __future__ import annotations

from typing import Protocol

from spendgate.store.alerts import AlertStore
from spendgate.store.batches import BatchStore
from spendgate.store.budgets import BudgetStore
from spendgate.store.finance import FinanceStore, ReconcileStore
from spendgate.store.ledger import LedgerStore
from spendgate.store.people import PeopleStore
from spendgate.store.principals import PrincipalStore
from spendgate.store.reports import ReportStore
from spendgate.store.spend import SpendStore


class NotFound(LookupError):
    """A named org, team, user or key does not exist."""


class Conflict(ValueError):
    """A unique name is already taken."""


class Store(
    LedgerStore,
    SpendStore,
    PrincipalStore,
    BudgetStore,
    AlertStore,
    FinanceStore,
    ReconcileStore,
    ReportStore,
    PeopleStore,
    BatchStore,
    Protocol,
):
    """Everything Spendgate keeps. Methods are blocking: call them off the event loop."""

    def migrate(self) -> list[str]:
        """Apply pending named migrations; return the ids applied."""
        ...

    def close(self) -> None: ...
