"""The people domain (`store/people.py`) for every SQL backend: roles, console sessions, sign-in
links, OIDC logins in progress and the audit log, plus the console's few ledger reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from spendgate.dimensions import SCOPE_BY
from spendgate.models import User
from spendgate.store.base import Conflict, NotFound
from spendgate.store.people import ROLES, AuditEntry, OidcLogin, RoleGrant, UiSession
from spendgate.store.sql_mixin import QueryMixin
from spendgate.store.sql_rollups import in_range

# Attribution columns a window of spend may be filtered on (exemptions: a budget's scope).
_WINDOW_COLUMNS = tuple(d.column for d in SCOPE_BY.values())


class PeopleQueries(QueryMixin):
    # --- users as people ---
    def users_by_email(self, email: str) -> list[User]:
        rows = self._query(
            "SELECT * FROM users WHERE LOWER(email) = ? AND revoked_at IS NULL ORDER BY created_at",
            (email.strip().lower(),),
        )
        return [User(**r) for r in rows]

    def get_user(self, ref: str) -> User:
        rows = self._query(
            "SELECT * FROM users WHERE id = ? OR name = ? OR LOWER(email) = ? "
            "ORDER BY revoked_at IS NOT NULL",
            (ref, ref, ref.strip().lower()),
        )
        live = [r for r in rows if r["revoked_at"] is None] or rows
        if not live:
            raise NotFound(f"no user named {ref!r}")
        if len(live) > 1:
            raise Conflict(f"{len(live)} users match {ref!r}; use the id")
        return User(**live[0])

    def set_user_slack(self, ref: str, member_id: str | None) -> User:
        user = self.get_user(ref)
        self._write("UPDATE users SET slack_member_id = ? WHERE id = ?", (member_id, user.id))
        return self.get_user(user.id)

    # --- roles ---
    def grant_role(self, user_id: str, role: str, team_id: str | None, granted_by: str, at: str) -> bool:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        return (
            self._changed(
                "INSERT INTO role_grants (user_id, role, team_id, granted_by, granted_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, role, team_id) DO NOTHING",
                (user_id, role, team_id or "", granted_by, at),
            )
            > 0
        )

    def revoke_role(self, user_id: str, role: str, team_id: str | None) -> bool:
        return (
            self._changed(
                "DELETE FROM role_grants WHERE user_id = ? AND role = ? AND team_id = ?",
                (user_id, role, team_id or ""),
            )
            > 0
        )

    def list_role_grants(
        self, user_id: str | None = None, team_id: str | None = None, role: str | None = None
    ) -> list[RoleGrant]:
        clauses, params = [], []
        for column, value in (("user_id", user_id), ("team_id", team_id), ("role", role)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(f"SELECT * FROM role_grants {where} ORDER BY granted_at, user_id, role", params)
        return [RoleGrant(**{**r, "team_id": r["team_id"] or None}) for r in rows]

    # --- console sessions ---
    def create_ui_session(self, session: UiSession) -> None:
        self._write(
            "INSERT INTO ui_sessions (token_hash, user_id, method, roles, csrf_token, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                session.token_hash,
                session.user_id,
                session.method,
                orjson.dumps(list(session.roles)).decode(),
                session.csrf_token,
                session.created_at,
                session.expires_at,
            ),
        )

    def ui_session(self, token_hash: str) -> UiSession | None:
        rows = self._query("SELECT * FROM ui_sessions WHERE token_hash = ?", (token_hash,))
        if not rows:
            return None
        row = rows[0]
        return UiSession(**{**row, "roles": tuple(orjson.loads(row["roles"]))})

    def end_ui_session(self, token_hash: str, at: str) -> None:
        self._write(
            "UPDATE ui_sessions SET ended_at = COALESCE(ended_at, ?) WHERE token_hash = ?", (at, token_hash)
        )

    # --- one-time sign-in links ---
    def create_signin_link(
        self, *, token_hash: str, user_id: str, created_by: str, created_at: str, expires_at: str
    ) -> None:
        self._write(
            "INSERT INTO signin_links (token_hash, user_id, created_by, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (token_hash, user_id, created_by, created_at, expires_at),
        )

    def use_signin_link(self, token_hash: str, now: str) -> str | None:
        # One conditional UPDATE: of two concurrent uses (or replicas), exactly one changes the row.
        used = self._changed(
            "UPDATE signin_links SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
            (now, token_hash, now),
        )
        if not used:
            return None
        rows = self._query("SELECT user_id FROM signin_links WHERE token_hash = ?", (token_hash,))
        return str(rows[0]["user_id"])

    # --- OIDC logins in progress ---
    def save_oidc_login(self, login: OidcLogin) -> None:
        self._write(
            "DELETE FROM oidc_logins WHERE expires_at <= ?", (login.created_at,)
        )  # keep the table small
        self._write(
            "INSERT INTO oidc_logins (state_hash, code_verifier, nonce, next_path, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                login.state_hash,
                login.code_verifier,
                login.nonce,
                login.next_path,
                login.created_at,
                login.expires_at,
            ),
        )

    def take_oidc_login(self, state_hash: str, now: str) -> OidcLogin | None:
        rows = self._query("SELECT * FROM oidc_logins WHERE state_hash = ?", (state_hash,))
        if not rows or not self._changed("DELETE FROM oidc_logins WHERE state_hash = ?", (state_hash,)):
            return None  # unknown, or another request took it first
        login = OidcLogin(**rows[0])
        return login if login.expires_at > now else None

    # --- audit log ---
    def record_audit(self, entry: AuditEntry) -> None:
        self._write(
            "INSERT INTO audit_log (id, at, actor, via, action, target, team_id, details)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.id,
                entry.at,
                entry.actor,
                entry.via,
                entry.action,
                entry.target,
                entry.team_id,
                orjson.dumps(entry.details).decode(),
            ),
        )

    def list_audit(
        self,
        *,
        since: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        team_ids: Sequence[str] | None = None,
        limit: int = 200,
    ) -> list[AuditEntry]:
        clauses, params = in_range("at", since, None)
        if actor:
            clauses.append("actor = ?")
            params.append(actor)
        if action:
            clauses.append("(action = ? OR action LIKE ?)")
            params += [action, f"{action}.%"]
        if team_ids is not None:
            if not team_ids:
                return []
            clauses.append(f"team_id IN ({', '.join('?' for _ in team_ids)})")
            params += list(team_ids)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(f"SELECT * FROM audit_log {where} ORDER BY at DESC, id LIMIT ?", [*params, limit])
        return [AuditEntry(**{**r, "details": orjson.loads(r["details"])}) for r in rows]

    # --- ledger reads only the console makes ---
    def session_spend(self, key_ids: Sequence[str], since: str, until: str) -> list[dict[str, Any]]:
        if not key_ids:
            return []
        # One query per key keeps each on the (key_id, started_at) index.
        totals: dict[str | None, dict[str, Any]] = {}
        for key_id in key_ids:
            rows = self._query(
                "SELECT session_id, COUNT(*) AS requests, SUM(cost_nanos) AS cost_nanos, "
                "MIN(started_at) AS first_at, MAX(started_at) AS last_at FROM ledger "
                "WHERE key_id = ? AND started_at >= ? AND started_at < ? GROUP BY session_id",
                (key_id, since, until),
            )
            for r in rows:
                item = totals.setdefault(
                    r["session_id"],
                    {
                        "session_id": r["session_id"],
                        "requests": 0,
                        "cost_nanos": 0,
                        "first_at": r["first_at"],
                    },
                )
                item["requests"] += int(r["requests"])
                item["cost_nanos"] += int(r["cost_nanos"] or 0)
                item["first_at"] = min(item["first_at"], r["first_at"])
                item["last_at"] = max(item.get("last_at", r["last_at"]), r["last_at"])
        return sorted(totals.values(), key=lambda r: (-r["cost_nanos"], str(r["session_id"])))

    def window_spend(self, column: str, value: str, since: str, until: str) -> list[dict[str, Any]]:
        if column not in _WINDOW_COLUMNS:
            raise ValueError(f"cannot filter spend on {column!r}")
        return self._query(
            "SELECT use_case, key_id, session_id, COUNT(*) AS requests, SUM(cost_nanos) AS cost_nanos "
            f"FROM ledger WHERE {column} = ? AND started_at >= ? AND started_at < ? "
            "GROUP BY use_case, key_id, session_id ORDER BY cost_nanos DESC",
            (value, since, until),
        )

    def first_spend_day(self, by: str) -> dict[str | None, str]:
        if by not in ("team_id", "org_id"):
            raise ValueError(f"cannot group first days by {by!r}")
        rows = self._query(f"SELECT {by} AS value, MIN(day) AS first FROM ledger_daily_team GROUP BY {by}")
        return {(r["value"] or None): str(r["first"]) for r in rows}
