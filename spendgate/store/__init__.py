"""Storage backends behind one interface (`Store`)."""

from __future__ import annotations

from spendgate.store.base import Conflict, NotFound, Store


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
