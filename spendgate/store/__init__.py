"""Storage backends behind one interface (`Store`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spendgate.store.base import Conflict, NotFound, Store

__all__ = ["Conflict", "NotFound", "Store", "open_store"]


def __getattr__(name: str) -> Any:
    # Lazy, so importing one domain module (spendgate.store.budgets, say) does not load every
    # domain's protocol: the CLI imports a few of them while it is built, on every start.
    if name in ("Conflict", "NotFound", "Store"):
        from spendgate.store import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(database_url: str) -> Store:
    """The store for a database URL: sqlite:///path (default) or postgresql://..."""
    if database_url.startswith("sqlite:///"):
        from spendgate.store.sqlite import SQLiteStore

        return SQLiteStore(database_url.removeprefix("sqlite:///"))
    if database_url.startswith(("postgresql://", "postgres://")):
        from spendgate.store.postgres import PostgresStore

        return PostgresStore(database_url)
    raise ValueError(f"unsupported SPENDGATE_DATABASE_URL scheme: {database_url.split(':', 1)[0]}")


__all__ = ["Conflict", "NotFound", "Store", "open_store"]
