"""PostgreSQL backend: production mode's ledger and configuration."""

from spendgate.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
