"""The reports domain of the store: the chargeback's figures and the scheduled report runs claimed
once across replicas (`store/sql_reports.py` implements it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ReportRun:
    """One scheduled report for one period, claimed once across replicas."""

    entry: str
    period: str
    report: str
    status: str  # running, done
    claimed_at: str
    claimed_by: str
    finished_at: str | None
    files: list[str]
    emailed: list[str]


class ReportStore(Protocol):
    """Chargeback rows and report runs. Methods are blocking."""

    def chargeback_rows(self, since: str, until: str) -> list[dict[str, Any]]:
        """Ledger rows in [since, until) with the columns a chargeback uses, plus org/team names."""
        ...

    def claim_report_run(
        self, *, entry: str, period: str, report: str, now: str, by: str, stale_before: str
    ) -> bool:
        """Claim (entry, period) once across replicas; a running claim older than stale_before is
        taken over."""
        ...

    def finish_report_run(
        self, *, entry: str, period: str, finished_at: str, files: Sequence[str], emailed: Sequence[str]
    ) -> None: ...
    def release_report_run(self, *, entry: str, period: str) -> None: ...
    def list_report_runs(self) -> list[ReportRun]: ...
