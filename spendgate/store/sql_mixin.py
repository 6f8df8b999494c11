"""The base of every SQL query class (`sql_*.py`): one connection and the helpers they share.

`SQLStore` (sql.py) combines the query classes, one per domain; a backend package (sqlite/,
postgres/) subclasses it and supplies the connection, its placeholder style and how it spells a
unique-key violation. Queries are written with `?` placeholders in SQL that SQLite and PostgreSQL
both accept. Calls are serialised on one connection per store (the ledger writer batches, so one
connection is plenty).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from spendgate.dimensions import BY_NAME
from spendgate.store.base import Conflict, NotFound


class Tx(Protocol):
    """One open transaction (SQL already in the backend's placeholder style)."""

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...
    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """A one-row `INSERT ... VALUES (...)` for many rows, batched the backend's best way."""
        ...


class QueryMixin:
    """Backends set `placeholder` and implement `_connect`, `_run`, `_run_many`, `_begin`,
    `_is_unique_violation` and `_apply_migrations`."""

    placeholder = "?"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: Any = self._connect()

    # --- what a backend implements ---
    def _connect(self) -> Any:
        raise NotImplementedError

    def _run(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """Execute one statement; rows as dicts (empty for writes)."""
        raise NotImplementedError

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Execute one statement per row in one transaction; the number of rows changed."""
        raise NotImplementedError

    def _begin(self) -> Any:
        """A context manager: one transaction on the connection, yielding a `Tx`."""
        raise NotImplementedError

    def _stream(self, sql: str, params: Sequence[Any], batch: int) -> Iterator[dict[str, Any]]:
        """One query's rows as they come, `batch` at a time from the database (never all at once),
        on a connection of its own: the store stays free for other queries meanwhile, and a reader
        that stops early holds nothing the store needs (the connection closes with the iterator)."""
        raise NotImplementedError

    def _is_unique_violation(self, exc: Exception) -> bool:
        raise NotImplementedError

    def _apply_migrations(self) -> list[str]:
        raise NotImplementedError

    # --- the helpers the query classes share ---
    @contextmanager
    def _transaction(self) -> Iterator[Tx]:
        with self._lock, self._begin() as tx:
            yield tx

    def _sql(self, sql: str) -> str:
        if self.placeholder == "?":
            return sql
        return sql.replace("%", "%%").replace("?", self.placeholder)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return self._run(self._sql(sql), params)

    def _iterate(self, sql: str, params: Sequence[Any], batch: int) -> Iterator[dict[str, Any]]:
        return self._stream(self._sql(sql), params, batch)

    def _changed(self, sql: str, params: Sequence[Any]) -> int:
        """Run one write; how many rows it changed (claims: the row count says who won)."""
        with self._lock:
            return self._run_many(self._sql(sql), [params])

    def _write(self, sql: str, params: Sequence[Any] = (), what: str = "") -> None:
        with self._lock:
            try:
                self._run(self._sql(sql), params)
            except Exception as exc:
                if self._is_unique_violation(exc):
                    raise Conflict(f"{what} already exists" if what else str(exc)) from None
                raise

    def _resolve(self, table: str, ref: str, what: str) -> dict[str, Any]:
        """The one row of `table` whose id or name is `ref`."""
        rows = self._query(f"SELECT * FROM {table} WHERE id = ? OR name = ?", (ref, ref))
        if not rows:
            raise NotFound(f"no {what} named {ref!r}")
        if len(rows) > 1:
            raise Conflict(f"{len(rows)} {what}s are named {ref!r}; use the id")
        return rows[0]

    def names(self, dimension: str) -> dict[str, str]:
        """Display names of a named dimension's ids (org, team, user, key), revoked ones included."""
        table = BY_NAME[dimension].names_table if dimension in BY_NAME else None
        if table is None:
            raise ValueError(f"{dimension} values are not ids")
        return {r["id"]: r["name"] for r in self._query(f"SELECT id, name FROM {table}")}
