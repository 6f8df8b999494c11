"""SQLite implementation of `Store`.

One connection per store object, used by one thread at a time: the ledger writer
owns its own store, and admin/CLI calls open their own.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from spendgate.clock import utc_now_iso
from spendgate.models import LEDGER_COLUMNS, SPEND_GROUPS, ApiKey, LedgerRow, Org, Principal, Team, User
from spendgate.store.base import Conflict, NotFound
from spendgate.store.migrate import apply_migrations

# Only a repeated request id is ignored (a journal replay); any other violation is an error.
_INSERT_LEDGER = (
    f"INSERT INTO ledger ({', '.join(LEDGER_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in LEDGER_COLUMNS)}) ON CONFLICT (request_id) DO NOTHING"
)
_TOKEN_SUMS = (
    "input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "output_tokens",
    "reasoning_tokens",
)
_NAME_TABLES = {"team": "teams", "user": "users", "key": "api_keys", "org": "orgs"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class SQLiteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrated = False
        self._lock = threading.Lock()
        self._conn = self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against process crashes in WAL mode; the journal covers the rest.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def migrate(self) -> list[str]:
        applied = apply_migrations(f"sqlite:///{self.path}")
        self._migrated = True
        return applied

    def close(self) -> None:
        self._conn.close()

    # --- helpers ---
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params))

    def _write(self, sql: str, params: Sequence[Any] = (), what: str = "") -> None:
        with self._lock:
            try:
                self._conn.execute(sql, params)
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" in str(exc) and what:
                    raise Conflict(f"{what} already exists") from None
                raise Conflict(str(exc)) from exc

    def _resolve(self, table: str, ref: str, what: str) -> sqlite3.Row:
        rows = self._query(f"SELECT * FROM {table} WHERE id = ? OR name = ?", (ref, ref))
        if not rows:
            raise NotFound(f"no {what} named {ref!r}")
        if len(rows) > 1:
            raise Conflict(f"{len(rows)} {what}s are named {ref!r}; use the id")
        return rows[0]

    # --- ledger ---
    def insert_ledger_rows(self, rows: Sequence[LedgerRow]) -> int:
        values = [_ledger_values(row) for row in rows]
        with self._lock:
            before = self._conn.total_changes
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(_INSERT_LEDGER, values)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            return self._conn.total_changes - before

    def ledger_rows(
        self, since: str | None = None, until: str | None = None, latest: int | None = None
    ) -> list[dict[str, Any]]:
        where, params = _period(since, until)
        if latest is None:
            rows = self._query(f"SELECT * FROM ledger {where} ORDER BY started_at", params)
        else:
            rows = self._query(
                f"SELECT * FROM (SELECT * FROM ledger {where} ORDER BY started_at DESC LIMIT ?) "
                "ORDER BY started_at",
                [*params, latest],
            )
        out = []
        for row in rows:
            item = dict(row)
            item["tags"] = orjson.loads(item["tags"])
            out.append(item)
        return out

    def spend(self, by: str, since: str | None, until: str | None) -> list[dict[str, Any]]:
        column = SPEND_GROUPS[by]
        where, params = _period(since, until)
        sums = ", ".join(f"SUM({c}) AS {c}" for c in _TOKEN_SUMS)
        name_join, name_expr = "", f"l.{column}"
        if by in _NAME_TABLES:
            name_join = f"LEFT JOIN {_NAME_TABLES[by]} n ON n.id = l.{column}"
            name_expr = f"COALESCE(n.name, l.{column})"
        rows = self._query(
            f"SELECT l.{column} AS id, {name_expr} AS name, COUNT(*) AS requests, {sums}, "
            f"SUM(l.cost_nanos) AS cost_nanos, SUM(l.estimated) AS estimated_requests "
            f"FROM ledger l {name_join} {where.replace('started_at', 'l.started_at')} "
            f"GROUP BY l.{column}, {name_expr} ORDER BY cost_nanos DESC",
            params,
        )
        return [dict(r) for r in rows]

    # --- orgs ---
    def create_org(self, name: str) -> Org:
        org = Org(id=new_id("org"), name=name, created_at=utc_now_iso())
        self._write(
            "INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)", (org.id, name, org.created_at)
        )
        return org

    def list_orgs(self, include_revoked: bool = False) -> list[Org]:
        return [Org(**dict(r)) for r in self._query(_list_sql("orgs", include_revoked))]

    def revoke_org(self, ref: str) -> Org:
        row = self._resolve("orgs", ref, "org")
        return Org(**dict(self._revoke("orgs", row["id"])))

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
        return [Team(**dict(r)) for r in self._query(_list_sql("teams", include_revoked))]

    def revoke_team(self, ref: str) -> Team:
        row = self._resolve("teams", ref, "team")
        return Team(**dict(self._revoke("teams", row["id"])))

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
        return [User(**dict(r)) for r in self._query(_list_sql("users", include_revoked))]

    def revoke_user(self, ref: str) -> User:
        row = self._resolve("users", ref, "user")
        return User(**dict(self._revoke("users", row["id"])))

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

    def active_principals(self) -> dict[str, Principal]:
        rows = self._query(
            "SELECT k.*, t.cost_center FROM api_keys k JOIN teams t ON t.id = k.team_id "
            "JOIN orgs o ON o.id = k.org_id LEFT JOIN users u ON u.id = k.user_id "
            "WHERE k.revoked_at IS NULL AND t.revoked_at IS NULL AND o.revoked_at IS NULL "
            "AND u.revoked_at IS NULL"
        )
        return {
            r["key_hash"]: Principal(
                key_id=r["id"],
                key_name=r["name"],
                org_id=r["org_id"],
                team_id=r["team_id"],
                user_id=r["user_id"],
                cost_center=r["cost_center"],
                default_use_case=r["default_use_case"],
                default_tags=orjson.loads(r["default_tags"]),
                expires_at=r["expires_at"],
            )
            for r in rows
        }

    def _revoke(self, table: str, row_id: str) -> sqlite3.Row:
        self._write(
            f"UPDATE {table} SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (utc_now_iso(), row_id)
        )
        return self._query(f"SELECT * FROM {table} WHERE id = ?", (row_id,))[0]


def _list_sql(table: str, include_revoked: bool) -> str:
    where = "" if include_revoked else "WHERE revoked_at IS NULL"
    return f"SELECT * FROM {table} {where} ORDER BY created_at, id"


def _key(row: sqlite3.Row) -> ApiKey:
    item = dict(row)
    item["default_tags"] = orjson.loads(item["default_tags"])
    return ApiKey(**item)


def _period(since: str | None, until: str | None) -> tuple[str, list[str]]:
    clauses, params = [], []
    if since:
        clauses.append("started_at >= ?")
        params.append(since)
    if until:
        clauses.append("started_at < ?")
        params.append(until)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _ledger_values(row: LedgerRow) -> tuple[Any, ...]:
    values = []
    for name in LEDGER_COLUMNS:
        value = getattr(row, name)
        if name == "tags":
            value = orjson.dumps(value).decode()
        elif isinstance(value, bool):
            value = int(value)
        values.append(value)
    return tuple(values)
