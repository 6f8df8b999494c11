"""The people domain of the store: roles, console sessions, sign-in links, OIDC logins in progress,
the audit log, and the few ledger reads only the console makes (`store/sql_people.py` implements it).

A consumer that needs only this part (the console, `spendgate roles`, the audit log) holds a
`PeopleStore`; rows come back as the frozen dataclasses below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from spendgate.models import User

ROLES = ("admin", "finance", "approver", "lead")
AUDIT_VIAS = ("cli", "api", "console")


@dataclass(frozen=True, slots=True)
class RoleGrant:
    user_id: str
    role: str  # one of ROLES
    team_id: str | None  # the team a lead leads; None for the other roles
    granted_by: str
    granted_at: str


@dataclass(frozen=True, slots=True)
class UiSession:
    token_hash: str  # SHA-256 of the cookie's token; the token itself is never stored
    user_id: str
    method: str  # oidc, header, link
    roles: tuple[str, ...]  # extra roles from the identity provider's groups ('lead:platform', ...)
    csrf_token: str
    created_at: str
    expires_at: str
    ended_at: str | None = None


@dataclass(frozen=True, slots=True)
class OidcLogin:
    state_hash: str
    code_verifier: str
    nonce: str
    next_path: str
    created_at: str
    expires_at: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str
    at: str
    actor: str  # an email, an OS user or 'master-key'
    via: str  # one of AUDIT_VIAS
    action: str  # key.create, role.grant, exemption.approve, signin, ...
    target: str
    team_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class PeopleStore(Protocol):
    """Blocking, like every store method: call off the event loop."""

    # --- users as people ---
    def users_by_email(self, email: str) -> list[User]:
        """Live users with this email, compared case-insensitively."""
        ...

    def get_user(self, ref: str) -> User:
        """A user by id, name or email (raises NotFound / Conflict)."""
        ...

    def set_user_slack(self, ref: str, member_id: str | None) -> User: ...

    # --- roles ---
    def grant_role(self, user_id: str, role: str, team_id: str | None, granted_by: str, at: str) -> bool:
        """True when granted now, False when the user already held it."""
        ...

    def revoke_role(self, user_id: str, role: str, team_id: str | None) -> bool: ...
    def list_role_grants(
        self, user_id: str | None = None, team_id: str | None = None, role: str | None = None
    ) -> list[RoleGrant]: ...

    # --- console sessions ---
    def create_ui_session(self, session: UiSession) -> None: ...
    def ui_session(self, token_hash: str) -> UiSession | None: ...
    def end_ui_session(self, token_hash: str, at: str) -> None: ...

    # --- one-time sign-in links ---
    def create_signin_link(
        self, *, token_hash: str, user_id: str, created_by: str, created_at: str, expires_at: str
    ) -> None: ...
    def use_signin_link(self, token_hash: str, now: str) -> str | None:
        """Mark the link used and return its user id, once, while it is valid; None otherwise."""
        ...

    # --- OIDC logins in progress ---
    def save_oidc_login(self, login: OidcLogin) -> None: ...
    def take_oidc_login(self, state_hash: str, now: str) -> OidcLogin | None:
        """The login for this state, deleted as it is read (a state works once); None if unknown
        or expired."""
        ...

    # --- audit log ---
    def record_audit(self, entry: AuditEntry) -> None: ...
    def list_audit(
        self,
        *,
        since: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        team_ids: Sequence[str] | None = None,
        limit: int = 200,
    ) -> list[AuditEntry]:
        """Newest first."""
        ...

    # --- ledger reads only the console makes ---
    def session_spend(self, key_ids: Sequence[str], since: str, until: str) -> list[dict[str, Any]]:
        """Spend of these keys' calls per Claude Code session: session_id, requests, cost_nanos, first_at,
        last_at (through the key/started_at index)."""
        ...

    def window_spend(self, column: str, value: str, since: str, until: str) -> list[dict[str, Any]]:
        """Calls in [since, until) whose `column` (an attribution column) is `value`, per use case,
        key and session: use_case, key_id, session_id, requests, cost_nanos."""
        ...

    def first_spend_day(self, by: str) -> dict[str | None, str]:
        """The first UTC day with spend per team id (`by` 'team_id') or org, from the daily rollup."""
        ...
