"""Orgs, teams, users and virtual keys, part of the shared SQL store."""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from spendgate.clock import utc_now_iso
from spendgate.models import ApiKey, Org, Principal, Team, User
from spendgate.store.base import Conflict, NotFound
from spendgate.store.sql_mixin import QueryMixin


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class PrincipalQueries(QueryMixin):
    # --- orgs ---
    def create_org(self, name: str) -> Org:
        org = Org(id=new_id("org"), name=name, created_at=utc_now_iso())
        self._write(
            "INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)", (org.id, name, org.created_at)
        )
        return org

    def list_orgs(self, include_revoked: bool = False) -> list[Org]:
        return [Org(**r) for r in self._query(_list_sql("orgs", include_revoked))]

    def revoke_org(self, ref: str) -> Org:
        row = self._resolve("orgs", ref, "org")
        return Org(**(self._revoke("orgs", row["id"])))

    # --- teams ---
    def create_team(self, org: str, name: str, cost_center: str) -> Team:
        org_row = self._resolve("orgs", org, "org")
        team = Team(
            id=new_id("team"),
            org_id=org_row["id"],
            name=name,
            cost_center=cost_center,
            created_at=utc_now_iso(),
        )
        self._write(
            "INSERT INTO teams (id, org_id, name, cost_center, created_at) VALUES (?, ?, ?, ?, ?)",
            (team.id, team.org_id, name, cost_center, team.created_at),
            what=f"a team named {name!r} in org {org!r}",
        )
        return team

    def list_teams(self, include_revoked: bool = False) -> list[Team]:
        return [Team(**r) for r in self._query(_list_sql("teams", include_revoked))]

    def revoke_team(self, ref: str) -> Team:
        row = self._resolve("teams", ref, "team")
        return Team(**(self._revoke("teams", row["id"])))

    # --- users ---
    def create_user(self, team: str, name: str, email: str | None) -> User:
        team_row = self._resolve("teams", team, "team")
        user = User(
            id=new_id("user"), team_id=team_row["id"], name=name, email=email, created_at=utc_now_iso()
        )
        self._write(
            "INSERT INTO users (id, team_id, name, email, created_at) VALUES (?, ?, ?, ?, ?)",
            (user.id, user.team_id, name, email, user.created_at),
            what=f"a user named {name!r} in team {team!r}",
        )
        return user

    def list_users(self, include_revoked: bool = False) -> list[User]:
        return [User(**r) for r in self._query(_list_sql("users", include_revoked))]

    def revoke_user(self, ref: str) -> User:
        row = self._resolve("users", ref, "user")
        return User(**(self._revoke("users", row["id"])))

    # --- keys ---
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
    ) -> ApiKey:
        team_row = self._resolve("teams", team, "team")
        user_id = None
        if user is not None:
            user_row = self._resolve("users", user, "user")
            if user_row["team_id"] != team_row["id"]:
                raise Conflict(f"user {user!r} is not in team {team!r}")
            user_id = user_row["id"]
        key = ApiKey(
            id=new_id("key"),
            key_hash=key_hash,
            key_prefix=key_prefix,
            name=name,
            org_id=team_row["org_id"],
            team_id=team_row["id"],
            user_id=user_id,
            default_use_case=default_use_case,
            default_tags=default_tags,
            created_at=utc_now_iso(),
            expires_at=expires_at,
        )
        self._write(
            "INSERT INTO api_keys (id, key_hash, key_prefix, name, org_id, team_id, user_id,"
            " default_use_case, default_tags, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key.id,
                key_hash,
                key_prefix,
                name,
                key.org_id,
                key.team_id,
                user_id,
                default_use_case,
                orjson.dumps(default_tags).decode(),
                key.created_at,
                expires_at,
            ),
        )
        return key

    def list_keys(self, include_revoked: bool = False) -> list[ApiKey]:
        return [_key(r) for r in self._query(_list_sql("api_keys", include_revoked))]

    def revoke_key(self, ref: str) -> ApiKey:
        rows = self._query(
            "SELECT * FROM api_keys WHERE id = ? OR name = ? OR key_prefix = ?", (ref, ref, ref)
        )
        if not rows:
            raise NotFound(f"no key named {ref!r}")
        if len(rows) > 1:
            raise Conflict(f"{len(rows)} keys match {ref!r}; use the id")
        return _key(self._revoke("api_keys", rows[0]["id"]))

    def active_principals(self, key_hash: str | None = None) -> dict[str, Principal]:
        sql = (
            "SELECT k.*, t.cost_center, t.name AS team_name FROM api_keys k JOIN teams t ON t.id = k.team_id "
            "JOIN orgs o ON o.id = k.org_id LEFT JOIN users u ON u.id = k.user_id "
            "WHERE k.revoked_at IS NULL AND t.revoked_at IS NULL AND o.revoked_at IS NULL "
            "AND u.revoked_at IS NULL"
        )
        rows = self._query(sql) if key_hash is None else self._query(f"{sql} AND k.key_hash = ?", (key_hash,))
        return {
            r["key_hash"]: Principal(
                key_id=r["id"],
                key_name=r["name"],
                org_id=r["org_id"],
                team_id=r["team_id"],
                team_name=r["team_name"],
                user_id=r["user_id"],
                cost_center=r["cost_center"],
                default_use_case=r["default_use_case"],
                default_tags=orjson.loads(r["default_tags"]),
                expires_at=r["expires_at"],
                rpm_limit=r["rpm_limit"],
                tpm_limit=r["tpm_limit"],
                concurrency_limit=r["concurrency_limit"],
            )
            for r in rows
        }

    # --- rate limits ---
    def set_key_limits(self, ref: str, rpm: int | None, tpm: int | None, concurrency: int | None) -> None:
        rows = self._query(
            "SELECT id FROM api_keys WHERE id = ? OR name = ? OR key_prefix = ?", (ref, ref, ref)
        )
        if len(rows) != 1:
            raise NotFound(f"no single key matches {ref!r}")
        self._write(
            "UPDATE api_keys SET rpm_limit = ?, tpm_limit = ?, concurrency_limit = ? WHERE id = ?",
            (rpm, tpm, concurrency, rows[0]["id"]),
        )

    def _revoke(self, table: str, row_id: str) -> dict[str, Any]:
        self._write(
            f"UPDATE {table} SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (utc_now_iso(), row_id)
        )
        return self._query(f"SELECT * FROM {table} WHERE id = ?", (row_id,))[0]


def _list_sql(table: str, include_revoked: bool) -> str:
    where = "" if include_revoked else "WHERE revoked_at IS NULL"
    return f"SELECT * FROM {table} {where} ORDER BY created_at, id"


def _key(row: dict[str, Any]) -> ApiKey:
    item = dict(row)
    item["default_tags"] = orjson.loads(item["default_tags"])
    return ApiKey(**item)
