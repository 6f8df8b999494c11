"""SQLite backend: the embedded default, in WAL mode so readers never block the ledger writer."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
        super().__init__()

    def _connect(self) -> sqlite3.Connection:
        # sqlite3 binds None through its adapter lookup, which raises and clears an AttributeError
        # for every NULL parameter (~0.3 µs each; a ledger row has a dozen or more, bound by the
        # writer thread while it holds the GIL the event loop needs). An adapter registered for
        # NoneType is found at once; `{}.get` returns None for None, in C. Process-wide and
        # idempotent; NoneType is not a base type, so other values keep their fast path.
        none: dict[None, None] = {}
        sqlite3.register_adapter(type(None), none.get)
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
            yield _Tx(conn)
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


class _Tx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def run(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return list(self._conn.execute(sql, params))

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """ROWS_PER_STATEMENT rows per statement: the VALUES group repeated."""
        if not rows:
            return
        group = f"({', '.join('?' for _ in rows[0])})"
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            statement = sql.replace(group, ", ".join(group for _ in chunk), 1)
            self._conn.execute(statement, [value for row in chunk for value in row])
