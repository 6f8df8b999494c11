"""SQLite backend: the embedded default. WAL mode so readers never block the ledger writer."""

from spendgate.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
