"""The finance domain of the store: merged pull requests, GitHub deliveries and identities
(`store/sql_finance.py`), provider-reported usage and the ledger's spend per day and model that
`spendgate reconcile` compares (`store/sql_reconcile.py`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class MergedPR:
    repo: str  # lower-cased owner/name
    number: int
    author: str  # lower-cased login
    merged_at: str  # ISO-8601 UTC with a Z, as in the ledger
    title: str | None = None
    base_ref: str | None = None
    head_ref: str | None = None
    url: str | None = None
    additions: int | None = None
    deletions: int | None = None


def normalise_repo(repo: str) -> str:
    name = repo.strip().removeprefix("https://github.com/").strip("/")
    if not _REPO.match(name):
        raise ValueError(f"a repository is OWNER/NAME, not {repo!r}")
    return name.lower()


@dataclass(frozen=True)
class ProviderUsage:
    day: str  # YYYY-MM-DD, UTC
    provider: str
    api_key_id: str
    model: str
    input_tokens: int = 0  # uncached input
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    requests: int | None = None
    cost_nanos: int | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.day, self.provider, self.api_key_id, self.model)


@dataclass(frozen=True, slots=True)
class UnmappedAuthor:
    """A GitHub login whose merged PRs count for no team."""

    login: str
    merged_prs: int
    first_merged_at: str
    last_merged_at: str


@dataclass(frozen=True, slots=True)
class LoginMapping:
    login: str
    user_id: str
    team_id: str  # the user's team: their merged PRs count for it


@dataclass(frozen=True, slots=True)
class RepoMapping:
    repo: str
    team_id: str  # the team a PR by an unmapped author counts for


@dataclass(frozen=True, slots=True)
class GithubIdentity:
    login: str
    user_id: str
    user_name: str
    team_id: str
    team: str  # the team's name
    mapped_at: str


@dataclass(frozen=True, slots=True)
class RepoTeam:
    repo: str
    team_id: str
    team: str  # the team's name
    mapped_at: str


@dataclass(frozen=True, slots=True)
class MeteredSpend:
    """The ledger's calls on one UTC day, provider and billed model."""

    day: str
    provider: str
    model: str  # the billed model ('' when the ledger has none)
    metered_requests: int
    cost_nanos: int


class FinanceStore(Protocol):
    """Merged PRs, GitHub deliveries and identities. Methods are blocking."""

    def upsert_pull_requests(
        self, prs: Sequence[MergedPR], source: str, on_progress: Callable[[int, int], None] | None = None
    ) -> dict[str, int]:
        """Store merged PRs keyed by (repo, number); counts of new, updated and unchanged.
        `on_progress(done, total)` hears how far it is now and then (a progress bar)."""
        ...

    def merged_pull_requests(
        self, since: str | None = None, until: str | None = None
    ) -> list[dict[str, Any]]:
        """Merged PRs with team_id (author's user's team, else the repository's) and mapped_by."""
        ...

    def unmapped_pr_authors(self) -> list[UnmappedAuthor]: ...
    def github_delivery_seen(self, delivery_id: str) -> bool: ...
    def record_github_delivery(self, delivery_id: str, event: str) -> bool: ...
    def map_github_login(self, login: str, user: str) -> LoginMapping: ...
    def map_repo_team(self, repo: str, team: str) -> RepoMapping: ...
    def list_github_identities(self) -> list[GithubIdentity]: ...
    def list_repo_teams(self) -> list[RepoTeam]: ...


class ReconcileStore(Protocol):
    """Provider-reported usage and the ledger's spend to compare it with. Methods are blocking."""

    def upsert_provider_usage(self, rows: Sequence[ProviderUsage], source: str) -> dict[str, int]:
        """Store provider usage keyed by (day, provider, key id, model); counts of new and replaced."""
        ...

    def provider_usage_rows(self, since_day: str, until_day: str) -> list[ProviderUsage]:
        """Imported rows with since_day <= day < until_day, ordered by their key."""
        ...

    def metered_by_day_model(self, since: str, until: str) -> list[MeteredSpend]:
        """Ledger spend per UTC day, provider and billed model: metered_requests, cost_nanos."""
        ...
