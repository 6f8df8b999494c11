"""SQLite backend: the embedded default, in WAL mode so readers never block the ledger writer."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from spendgate.models import LedgerRow
from spendgate.store.migrate import apply_migrations
from spendgate.store.sql import SQLStore, insert_ledger_sql, ledger_values

# Ledger rows per INSERT (42 parameters each; SQLite takes up to 32,766 per statement).
ROWS_PER_INSERT = 50


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {col[0]: value for col, value in zip(cursor.description, row, strict=True)}


class SQLiteStore(SQLStore):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
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

    def migrate(self) -> list[str]:
        return apply_migrations(f"sqlite:///{self.path}")

    def _run(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        return list(self._conn.execute(sql, params))

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

    def insert_ledger_rows(self, rows: Sequence[LedgerRow]) -> int:
        """Many rows per statement. sqlite3 releases the GIL while SQLite runs a statement, then
        waits for it back: with a statement per row, a busy event loop (which keeps the GIL up to
        the 5 ms switch interval) slowed a 500-row batch to seconds and the queue fell behind."""
        values = [ledger_values(row) for row in rows]
        with self._lock:
            conn: sqlite3.Connection = self._conn
            before = conn.total_changes
            conn.execute("BEGIN")
            try:
                for start in range(0, len(values), ROWS_PER_INSERT):
                    chunk = values[start : start + ROWS_PER_INSERT]
                    conn.execute(insert_ledger_sql(len(chunk)), [v for row in chunk for v in row])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return conn.total_changes - before

    def _is_unique_violation(self, exc: Exception) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)
