"""The principals domain of the store: orgs, teams, users and virtual keys, and the display names
of their ids (`store/sql_principals.py` implements it; the rows are in `models.py`)."""

from __future__ import annotations

from typing import Protocol

from spendgate.models import ApiKey, Org, Principal, Team, User


class NameStore(Protocol):
    """What a report or an alert needs to show ids by name."""

    def names(self, dimension: str) -> dict[str, str]:
        """Display names of a named dimension's ids (org, team, user, key), revoked ones included."""
        ...


class PrincipalStore(NameStore, Protocol):
    """Orgs, teams, users and keys. Methods are blocking."""

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
    def set_key_limits(self, ref: str, rpm: int | None, tpm: int | None, concurrency: int | None) -> None:
        """A key's requests/tokens per minute and calls in flight (None: no limit)."""
        ...

    def active_principals(self, key_hash: str | None = None) -> dict[str, Principal]:
        """Every usable key (not revoked, team/org/user not revoked), by key hash; only `key_hash`'s
        if given."""
        ...
