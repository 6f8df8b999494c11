"""The `Store` implementation shared by every SQL backend: one query class per domain (`sql_*.py`,
on the connection and helpers of `sql_mixin.py`), one set of queries for SQLite and PostgreSQL."""

from __future__ import annotations

from spendgate.store.migrate import shipped_migrations
from spendgate.store.sql_alerts import AlertQueries
from spendgate.store.sql_batches import BatchQueries
from spendgate.store.sql_budgets import BudgetQueries
from spendgate.store.sql_finance import FinanceQueries
from spendgate.store.sql_ledger import LedgerQueries
from spendgate.store.sql_people import PeopleQueries
from spendgate.store.sql_principals import PrincipalQueries
from spendgate.store.sql_quarantine import QuarantineQueries
from spendgate.store.sql_reconcile import ReconcileQueries
from spendgate.store.sql_reports import ReportQueries


class SQLStore(
    LedgerQueries,
    PrincipalQueries,
    BudgetQueries,
    AlertQueries,
    ReportQueries,
    FinanceQueries,
    ReconcileQueries,
    QuarantineQueries,
    PeopleQueries,
    BatchQueries,
):
    """Every query class on one connection; a backend package subclasses it (sqlite/, postgres/)."""

    def migrate(self) -> list[str]:
        if shipped_migrations() <= self._recorded_migrations():
            return []  # the common case (every CLI command, every restart): no yoyo to load
        applied = self._apply_migrations()
        if "0007_rollups" in applied:
            # The migration summed the daily rollups in SQL; the work rollup needs JSON parsed.
            self.rebuild_work_rollup()
        return applied

    def _recorded_migrations(self) -> set[str]:
        """The migrations yoyo has recorded as applied in this database."""
        try:
            rows = self._query("SELECT migration_id FROM _yoyo_migration")
        except Exception:  # no such table: a new database (sqlite3 and psycopg differ in the class)
            return set()
        return {str(row["migration_id"]) for row in rows}
