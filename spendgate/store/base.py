"""The storage interface. One package per backend implements it (SQLite is the default)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from spendgate.budgets.model import Budget, BudgetEvent, Exemption, Tier
from spendgate.finance.github import MergedPR
from spendgate.finance.provider_usage import ProviderUsage
from spendgate.models import ApiKey, LedgerRow, Org, Principal, Team, User


class NotFound(LookupError):
    """A named org, team, user or key does not exist."""


class Conflict(ValueError):
    """A unique name is already taken."""


class Store(Protocol):
    """Everything Spendgate keeps. Methods are blocking: call them off the event loop."""

    def migrate(self) -> list[str]:
        """Apply pending named migrations; return the ids applied."""
        ...

    def close(self) -> None: ...

    # --- ledger ---
    def insert_ledger_rows(self, rows: Sequence[LedgerRow]) -> int:
        """Insert rows, ignoring request ids already present (replays are idempotent)."""
        ...

    def quarantine_ledger_rows(self, items: Sequence[tuple[str, str, str]]) -> int:
        """Keep rows the database refused for good: (request id, reason, row as ASCII JSON) each."""
        ...

    def quarantined_ledger_rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Quarantined rows, newest first: request_id, quarantined_at, reason, row_json."""
        ...

    def ledger_rows(
        self, since: str | None = None, until: str | None = None, latest: int | None = None
    ) -> list[dict[str, Any]]:
        """Rows in the period, oldest first; only the `latest` N when given."""
        ...

    def spend(self, by: str, since: str | None, until: str | None) -> list[dict[str, Any]]: ...
    def sum_grouped(
        self,
        groups: Sequence[str],
        measures: Sequence[str],
        since: str | None,
        until: str | None,
        where: Mapping[str, str | None] | None = None,
    ) -> list[dict[str, Any]]:
        """Sums of rollup measures per distinct value of rollup key columns (or `day`) over calls
        started in [since, until): whole days from the daily rollup, partial days from the ledger."""
        ...

    def rebuild_rollups(self) -> dict[str, int]:
        """Recompute the daily rollups from the ledger; counts of rollup rows and tagged calls."""
        ...

    def savings(self, by: str, since: str | None, until: str | None) -> list[dict[str, Any]]:
        """Per group (team|use_case|rule|model): id, name, requests, routed_requests, cost_nanos and
        counterfactual_nanos (what the calls would have cost on the models asked for)."""
        ...

    # --- principals ---
    def create_org(self, name: str) -> Org: ...
    def list_orgs(self, include_revoked: bool = False) -> list[Org]: ...
    def revoke_org(self, ref: str) -> Org: ...

    def create_team(self, org: str, name: str, cost_center: str) -> Team: ...
    def list_teams(self, include_revoked: bool = False) -> list[Team]: ...
    def revoke_team(self, ref: str) -> Team: ...

    def create_user(self, team: str, name: str, email: str | None) -> User: ...
    def list_users(self, include_revoked: bool = False) -> list[User]: ...
    def revoke_user(self, ref: str) -> User: ...

    def create_key(
        self,
        *,
        key_hash: str,
        key_prefix: str,
        name: str,
        team: str,
        user: str | None,
        default_use_case: str | None,
        default_tags: dict[str, str],
        expires_at: str | None,
    ) -> ApiKey: ...
    def list_keys(self, include_revoked: bool = False) -> list[ApiKey]: ...
    def revoke_key(self, ref: str) -> ApiKey: ...

    def names(self, dimension: str) -> dict[str, str]:
        """Display names of a named dimension's ids (org, team, user, key), revoked ones included."""
        ...

    def active_principals(self) -> dict[str, Principal]:
        """Every usable key (not revoked, team/org/user not revoked), by key hash."""
        ...

    # --- budgets (see store/sql_budgets.py) ---
    def create_budget(
        self,
        *,
        name: str,
        scope_type: str,
        scope_value: str,
        amount_nanos: int,
        period: str = "month",
        timezone: str = "UTC",
        tiers: Sequence[Tier] | None = None,
        mode: str = "enforce",
        window_start: str | None = None,
        window_end: str | None = None,
    ) -> Budget: ...
    def list_budgets(self, include_revoked: bool = False) -> list[Budget]: ...
    def get_budget(self, ref: str) -> Budget: ...
    def revoke_budget(self, ref: str) -> Budget: ...
    def budget_spend(
        self, scope_type: str, scope_value: str, since: str, until: str, session_id: str | None = None
    ) -> int: ...
    def insert_budget_events(self, events: Sequence[BudgetEvent]) -> None: ...
    def list_budget_events(self, since: str | None = None) -> list[dict[str, Any]]: ...
    def would_block(self, since: str | None = None, until: str | None = None) -> list[dict[str, Any]]: ...
    def create_exemption(
        self,
        *,
        budget: str,
        starts_at: str,
        ends_at: str,
        reason: str,
        requested_by: str,
        amount_nanos: int | None = None,
        percent: int | None = None,
        use_case: str | None = None,
    ) -> Exemption: ...
    def decide_exemption(
        self, ref: str, *, approve: bool, decided_by: str, note: str | None = None
    ) -> Exemption: ...
    def list_exemptions(self, status: str | None = None) -> list[Exemption]: ...
    def set_key_limits(self, ref: str, rpm: int | None, tpm: int | None, concurrency: int | None) -> None: ...

    # --- alerts (see store/sql_alerts.py) ---
    def spend_hourly(
        self, by: str, since: str, until: str, where: tuple[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Spend per group value and UTC hour ('2026-11-28T16'): rows of value, hour, cost_nanos."""
        ...

    def spend_totals(
        self, by: str, since: str, until: str, where: tuple[str, str] | None = None
    ) -> dict[str | None, int]: ...
    def open_alert(
        self,
        *,
        alert_key: str,
        kind: str,
        group_by: str,
        group_value: str,
        day: str,
        summary: str,
        details: dict[str, Any],
        opened_at: str,
    ) -> str | None:
        """The new alert's id, or None when an alert with this key already exists."""
        ...

    def resolve_alert(self, alert_id: str, resolved_at: str, note: str) -> bool: ...
    def list_alerts(
        self, status: str | None = None, kind: str | None = None, since: str | None = None
    ) -> list[dict[str, Any]]: ...
    def alert_keys(self, keys: Sequence[str]) -> set[str]: ...
    def record_alert_delivery(
        self,
        *,
        alert_id: str,
        channel: str,
        action: str,
        attempt: int,
        status: str,
        at: str,
        http_status: int | None = None,
        error: str | None = None,
    ) -> None: ...
    def list_alert_deliveries(self, alert_id: str | None = None) -> list[dict[str, Any]]: ...

    # --- reports (see store/sql_reports.py) ---
    def chargeback_rows(self, since: str, until: str) -> list[dict[str, Any]]:
        """Ledger rows in [since, until) with the columns a chargeback uses, plus org/team names."""
        ...

    # --- scheduled report runs (see store/sql_reports.py) ---
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
    def list_report_runs(self) -> list[dict[str, Any]]: ...

    # --- merged pull requests and GitHub identities (see store/sql_finance.py) ---
    def upsert_pull_requests(self, prs: Sequence[MergedPR], source: str) -> dict[str, int]:
        """Store merged PRs keyed by (repo, number); counts of new, updated and unchanged."""
        ...

    def merged_pull_requests(
        self, since: str | None = None, until: str | None = None
    ) -> list[dict[str, Any]]:
        """Merged PRs with team_id (author's user's team, else the repository's) and mapped_by."""
        ...

    def unmapped_pr_authors(self) -> list[dict[str, Any]]: ...
    def github_delivery_seen(self, delivery_id: str) -> bool: ...
    def record_github_delivery(self, delivery_id: str, event: str) -> bool: ...
    def map_github_login(self, login: str, user: str) -> dict[str, Any]: ...
    def map_repo_team(self, repo: str, team: str) -> dict[str, Any]: ...
    def list_github_identities(self) -> list[dict[str, Any]]: ...
    def list_repo_teams(self) -> list[dict[str, Any]]: ...
    def spend_by_month(self, by: str, since: str, until: str) -> list[dict[str, Any]]:
        """Ledger spend per group value (team id or use case) and UTC month: value, month, cost_nanos."""
        ...

    def spend_daily(self, by: str, since: str, until: str) -> list[dict[str, Any]]:
        """Spend per group value (any `spend --by` group but session) and UTC day: value, day,
        requests, cost_nanos."""
        ...

    def tagged_spend(self, keys: Sequence[str], since: str, until: str) -> list[dict[str, Any]]: ...

    # --- provider usage and reconciliation (see store/sql_reconcile.py) ---
    def upsert_provider_usage(self, rows: Sequence[ProviderUsage], source: str) -> dict[str, int]:
        """Store provider usage keyed by (day, provider, key id, model); counts of new and replaced."""
        ...

    def provider_usage_rows(self, since_day: str, until_day: str) -> list[dict[str, Any]]: ...
    def metered_by_day_model(self, since: str, until: str) -> list[dict[str, Any]]:
        """Ledger spend per UTC day, provider and billed model: metered_requests, cost_nanos."""
        ...
