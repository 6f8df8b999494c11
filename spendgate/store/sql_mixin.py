"""What the query mixins (`sql_*.py`) use from the SQL store, declared once for type checking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class QueryMixin:
    """Base of every query mixin. `SQLStore` provides these helpers; it comes before this class in
    its own method order, so these stubs never run."""

    _lock: Any

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _write(self, sql: str, params: Sequence[Any] = (), what: str = "") -> None:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        raise NotImplementedError

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        raise NotImplementedError

    def _changed(self, sql: str, params: Sequence[Any]) -> int:
        raise NotImplementedError

    def _resolve(self, table: str, ref: str, what: str) -> dict[str, Any]:
        raise NotImplementedError

    def _transaction(self) -> Any:
        raise NotImplementedError
