"""The `Store` implementation shared by every SQL backend: one set of queries.

Queries are written with `?` placeholders in SQL that SQLite and PostgreSQL both
accept; a backend supplies the connection, its placeholder style and how it spells a
unique-key violation. Calls are serialised on one connection per store (the ledger
writer batches, so one connection is plenty).
"""

from __future__ import annotations

import operator
import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

from spendgate.clock import utc_now_iso
from spendgate.models import (
    LEDGER_COLUMNS,
    SPEND_GROUPS,
    TOKEN_COLUMNS,
    ApiKey,
    LedgerRow,
    Org,
    Principal,
    Team,
    User,
)
from spendgate.store.base import Conflict, NotFound
from spendgate.store.sql_alerts import AlertQueries
from spendgate.store.sql_budgets import BudgetQueries
from spendgate.store.sql_finance import FinanceQueries
from spendgate.store.sql_reconcile import ReconcileQueries
from spendgate.store.sql_reports import ReportQueries
from spendgate.store.sql_rollups import RollupQueries, Tx, add_to_rollups, in_range

# Only a repeated request id is ignored (a journal replay); any other violation is an error.
_INSERT_LEDGER = (
    f"INSERT INTO ledger ({', '.join(LEDGER_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in LEDGER_COLUMNS)}) ON CONFLICT (request_id) DO NOTHING"
)
_ID_CHUNK = 500  # request ids per IN (...) lookup, well under SQLite's parameter limit
_NAME_TABLES = {"team": "teams", "user": "users", "key": "api_keys", "org": "orgs"}
# savings --by value -> ledger column; a model's savings are grouped by the model asked for
_SAVINGS_GROUPS = {
    "team": "team_id",
    "use_case": "use_case",
    "rule": "route_rule",
    "model": "requested_model",
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class SQLStore(BudgetQueries, AlertQueries, ReportQueries, FinanceQueries, ReconcileQueries, RollupQueries):
    """Subclasses set `placeholder` and implement `_connect`, `_run`, `_run_many`, `_begin`,
    `_is_unique_violation` and `_apply_migrations`."""

    placeholder = "?"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: Any = self._connect()

    def _connect(self) -> Any:
        raise NotImplementedError

    def _run(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """Execute one statement; rows as dicts (empty for writes)."""
        raise NotImplementedError

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Execute one statement per row in one transaction; the number of rows changed."""
        raise NotImplementedError

    def _begin(self) -> Any:
        """A context manager: one transaction on the connection, yielding a `Tx`."""
        raise NotImplementedError

    def _is_unique_violation(self, exc: Exception) -> bool:
        raise NotImplementedError

    def _apply_migrations(self) -> list[str]:
        raise NotImplementedError

    def migrate(self) -> list[str]:
        applied = self._apply_migrations()
        if "0007_rollups" in applied:
            # The migration summed the daily rollups in SQL; the work rollup needs JSON parsed.
            self.rebuild_work_rollup()
        return applied

    @contextmanager
    def _transaction(self) -> Iterator[Tx]:
        with self._lock, self._begin() as tx:
            yield tx

    def _sql(self, sql: str) -> str:
        if self.placeholder == "?":
            return sql
        return sql.replace("%", "%%").replace("?", self.placeholder)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- helpers ---
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return self._run(self._sql(sql), params)

    def _changed(self, sql: str, params: Sequence[Any]) -> int:
        """Run one write; how many rows it changed (claims: the row count says who won)."""
        with self._lock:
            return self._run_many(self._sql(sql), [params])

    def _write(self, sql: str, params: Sequence[Any] = (), what: str = "") -> None:
        with self._lock:
            try:
                self._run(self._sql(sql), params)
            except Exception as exc:
                if self._is_unique_violation(exc):
                    raise Conflict(f"{what} already exists" if what else str(exc)) from None
                raise

    def _resolve(self, table: str, ref: str, what: str) -> dict[str, Any]:
        rows = self._query(f"SELECT * FROM {table} WHERE id = ? OR name = ?", (ref, ref))
        if not rows:
            raise NotFound(f"no {what} named {ref!r}")
        if len(rows) > 1:
            raise Conflict(f"{len(rows)} {what}s are named {ref!r}; use the id")
        return rows[0]

    # --- ledger ---
    def insert_ledger_rows(self, rows: Sequence[LedgerRow]) -> int:
        # Request ids are unique per replica and a journal segment is replayed by one process,
        # so rows not present when the transaction starts are exactly the rows it inserts.
        with self._transaction() as tx:
            present: set[str] = set()
            ids = [row.request_id for row in rows]
            for start in range(0, len(ids), _ID_CHUNK):
                chunk = ids[start : start + _ID_CHUNK]
                found = tx.run(
                    self._sql(
                        f"SELECT request_id FROM ledger WHERE request_id IN ({', '.join('?' for _ in chunk)})"
                    ),
                    chunk,
                )
                present.update(r["request_id"] for r in found)
            new: list[LedgerRow] = []
            for row in rows:
                if row.request_id not in present:
                    present.add(row.request_id)
                    new.append(row)
            if new:
                tx.run_many(self._sql(_INSERT_LEDGER), [ledger_values(row) for row in new])
                add_to_rollups(tx, self._sql, new)
            return len(new)

    def ledger_rows(
        self, since: str | None = None, until: str | None = None, latest: int | None = None
    ) -> list[dict[str, Any]]:
        where, params = _period(since, until)
        if latest is None:
            rows = self._query(f"SELECT * FROM ledger {where} ORDER BY started_at", params)
        else:
            rows = self._query(
                f"SELECT * FROM (SELECT * FROM ledger {where} ORDER BY started_at DESC LIMIT ?) AS latest "
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
        if by == "session":  # too many values for the rollup: the raw ledger, by its index
            return self._raw_spend(column, since, until)
        measures = ["requests", *TOKEN_COLUMNS, "cost_nanos", "estimated_requests"]
        rows = self.sum_grouped([column], measures, since, until)
        out = [{"id": r[column], "name": r[column], **{m: r[m] for m in measures}} for r in rows]
        self._name(out, by)
        return sorted(out, key=lambda r: (-r["cost_nanos"], str(r["id"])))

    def _raw_spend(self, column: str, since: str | None, until: str | None) -> list[dict[str, Any]]:
        where, params = _period(since, until)
        sums = ", ".join(f"SUM({c}) AS {c}" for c in TOKEN_COLUMNS)
        return self._query(
            f"SELECT {column} AS id, {column} AS name, COUNT(*) AS requests, {sums}, "
            f"SUM(cost_nanos) AS cost_nanos, SUM(estimated) AS estimated_requests "
            f"FROM ledger {where} GROUP BY {column} ORDER BY cost_nanos DESC",
            params,
        )

    def savings(self, by: str, since: str | None, until: str | None) -> list[dict[str, Any]]:
        if by not in _SAVINGS_GROUPS:
            raise ValueError(f"--by must be one of {', '.join(_SAVINGS_GROUPS)}")
        column = _SAVINGS_GROUPS[by]
        # Routed: a rule picked a model other than the one asked for. A row without a
        # counterfactual (failed, or from before routing) would have cost what it did.
        measures = ["requests", "routed_requests", "cost_nanos", "counterfactual_nanos"]
        rows = self.sum_grouped([column], measures, since, until)
        out = [{"id": r[column], "name": r[column], **{m: r[m] for m in measures}} for r in rows]
        self._name(out, by)
        return out

    def _name(self, rows: list[dict[str, Any]], by: str) -> None:
        """Set each row's `name` from the named table when `by` has one (the id when unknown)."""
        table = _NAME_TABLES.get(by)
        if table is None or not rows:
            return
        names = {r["id"]: r["name"] for r in self._query(f"SELECT id, name FROM {table}")}
        for row in rows:
            row["name"] = names.get(row["id"], row["id"])

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

    def active_principals(self) -> dict[str, Principal]:
        rows = self._query(
            "SELECT k.*, t.cost_center, t.name AS team_name FROM api_keys k JOIN teams t ON t.id = k.team_id "
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


def _period(since: str | None, until: str | None) -> tuple[str, list[Any]]:
    clauses, params = in_range("started_at", since or None, until or None)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


_ROW_VALUES = operator.attrgetter(*LEDGER_COLUMNS)
_TAGS = LEDGER_COLUMNS.index("tags")
_BOOLS = tuple(i for i, f in enumerate(LedgerRow.__dataclass_fields__.values()) if f.type in ("bool", bool))


def ledger_values(row: LedgerRow) -> list[Any]:
    """The row as insert parameters, in column order: tags as JSON text, booleans as 0/1."""
    values: list[Any] = list(_ROW_VALUES(row))
    values[_TAGS] = orjson.dumps(values[_TAGS]).decode()
    for i in _BOOLS:
        values[i] = int(values[i])
    return values
