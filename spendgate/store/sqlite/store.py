"""SQLite backend: the embedded default, in WAL mode so readers never block the ledger writer."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

from spendgate.store.migrate import apply_migrations
from spendgate.store.sql import SQLStore


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {col[0]: value for col, value in zip(cursor.description, row, strict=True)}


class SQLiteStore(SQLStore):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._statements: dict[tuple[str, int], str] = {}  # multi-row statements by (sql, rows)
        # sqlite3 binds None through its adapter lookup, which raises and clears an AttributeError
        # for every NULL parameter (~0.3 µs each; a ledger row has a dozen or more, bound by the
        # writer thread while it holds the GIL the event loop needs). An adapter registered for
        # NoneType is found at once; `{}.get` returns None for None, in C. Process-wide and
        # idempotent; NoneType is not a base type, so other values keep their fast path.
        none: dict[None, None] = {}
        sqlite3.register_adapter(type(None), none.get)
        super().__init__()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = _dict_row
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against process crashes in WAL mode; the journal covers the rest.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _apply_migrations(self) -> list[str]:
        return apply_migrations(f"sqlite:///{self.path}")

    @contextmanager
    def _begin(self) -> Iterator[_Tx]:
        conn: sqlite3.Connection = self._conn
        conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock later
        try:
            yield _Tx(conn, self._statements)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _run(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        return list(self._conn.execute(sql, params))

    def _stream(self, sql: str, params: Sequence[Any], batch: int) -> Iterator[dict[str, Any]]:
        conn = self._connect()  # WAL: this reader sees one snapshot and blocks no writer
        try:
            cursor = conn.execute(sql, params)
            while rows := cursor.fetchmany(batch):
                yield from rows
        finally:
            conn.close()

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        conn: sqlite3.Connection = self._conn
        before = conn.total_changes
        conn.execute("BEGIN")
        try:
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return conn.total_changes - before

    def _is_unique_violation(self, exc: Exception) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)


# Rows per multi-row INSERT: sqlite3 releases the GIL for each statement and must win it back from
# a busy event loop (up to the 5 ms switch interval), so one statement per row (executemany) made a
# 500-row batch take seconds. 50 ledger rows are 2,100 parameters, far under SQLite's 32,766.
ROWS_PER_STATEMENT = 50


def statement_rows(left: int) -> int:
    """Rows in the next statement for `left` rows: ROWS_PER_STATEMENT, else the largest power of
    two that fits. A statement of every batch size was new text that SQLite parsed again (a 50-row
    ledger insert is 2,100 placeholders: its parsing cost more than the insert); these few sizes
    stay in sqlite3's statement cache, at the price of a statement per set bit of the remainder."""
    return ROWS_PER_STATEMENT if left >= ROWS_PER_STATEMENT else 1 << (left.bit_length() - 1)


class _Tx:
    def __init__(self, conn: sqlite3.Connection, statements: dict[tuple[str, int], str]) -> None:
        self._conn = conn
        self._statements = statements

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return list(self._conn.execute(sql, params))

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Up to ROWS_PER_STATEMENT rows per statement (the VALUES group repeated), in the few
        sizes `statement_rows` allows."""
        start = 0
        while start < len(rows):
            size = statement_rows(len(rows) - start)
            statement = self._statements.get((sql, size))
            if statement is None:
                group = f"({', '.join('?' for _ in rows[start])})"
                statement = self._statements[(sql, size)] = sql.replace(group, ", ".join([group] * size), 1)
            chunk = rows[start : start + size]
            self._conn.execute(statement, list(chain.from_iterable(chunk)))  # flattened in C
            start += size
