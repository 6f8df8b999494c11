"""PostgreSQL backend (psycopg 3). Same schema and queries as SQLite; reconnects after an outage."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from spendgate.store.migrate import apply_migrations
from spendgate.store.sql import SQLStore


class PostgresStore(SQLStore):
    placeholder = "%s"

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__()

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        return psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=5)

    def _apply_migrations(self) -> list[str]:
        scheme, rest = self.url.split("://", 1)
        return apply_migrations(f"postgresql+psycopg://{rest}" if scheme.startswith("postgres") else self.url)

    def _ensure(self) -> psycopg.Connection[dict[str, Any]]:
        # After an outage the old connection is dead: open a new one (raises while still down).
        conn: psycopg.Connection[dict[str, Any]] = self._conn
        if conn.closed or conn.broken:
            self._conn = conn = self._connect()
        return conn

    def _run(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        with self._ensure().cursor() as cur:
            cur.execute(sql, params)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description else []

    def _stream(self, sql: str, params: Sequence[Any], batch: int) -> Iterator[dict[str, Any]]:
        # A server-side cursor (it lives in a transaction): PostgreSQL sends `batch` rows per
        # round trip instead of the whole result.
        with self._connect() as conn, conn.transaction(), conn.cursor(name="spendgate_stream") as cur:
            cur.itersize = batch
            cur.execute(sql, params)  # type: ignore[arg-type]
            yield from cur

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        conn = self._ensure()
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, rows)  # type: ignore[arg-type]
            return max(cur.rowcount, 0)

    @contextmanager
    def _begin(self) -> Iterator[_Tx]:
        conn = self._ensure()
        with conn.transaction(), conn.cursor() as cur:
            yield _Tx(cur)

    def _is_unique_violation(self, exc: Exception) -> bool:
        return isinstance(exc, psycopg.errors.UniqueViolation)


class _Tx:
    def __init__(self, cursor: psycopg.Cursor[dict[str, Any]]) -> None:
        self._cur = cursor

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self._cur.execute(sql, params)  # type: ignore[arg-type]
        return list(self._cur.fetchall()) if self._cur.description else []

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        # psycopg pipelines executemany: one round trip, and the one-row statement is parsed once
        # (a long multi-row statement is not cached and its parsing dominated the writer's time).
        self._cur.executemany(sql, rows)  # type: ignore[arg-type]
