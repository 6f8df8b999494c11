"""`spendgate orgs|teams|users|keys ...`: manage principals straight in the database.

The CLI opens the store itself (no server needed), so it works on a fresh machine.
The operations are the ones the HTTP admin API uses (`spendgate.admin.service`, `budget_service`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from spendgate.admin import budget_service, service
from spendgate.config import Settings
from spendgate.models import Org, Team, User
from spendgate.store import Conflict, NotFound, Store, open_store

if TYPE_CHECKING:
    from rich.console import Console


class Format(StrEnum):
    table = "table"
    json = "json"


FORMAT_OPTION = typer.Option(Format.table, "--format", help="Output format.")
REVOKED_OPTION = typer.Option(False, "--include-revoked", help="Also list revoked entries.")


@contextlib.contextmanager
def cli_store() -> Iterator[Store]:
    """The configured store, migrated; expected errors become one line on stderr and exit 1."""
    try:
        store = open_store(Settings().database_url)
    except (ValueError, NotImplementedError) as exc:
        fail(str(exc))
    try:
        store.migrate()
        yield store
    except (NotFound, Conflict, ValueError) as exc:
        fail(str(exc))
    finally:
        store.close()


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def console() -> Console:
    from rich.console import Console

    out = Console()
    if not out.is_terminal:
        # Piped or captured: no terminal width to respect, so do not squeeze ids into "key_3…".
        out.width = max(out.width, 240)
    return out


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    from rich.table import Table

    table = Table(title=title)
    for name in columns:
        table.add_column(name, overflow="fold")  # wrap long ids rather than truncate them
    for row in rows:
        table.add_row(*(cell(value) for value in row))
    console().print(table)


def parse_tags(pairs: Sequence[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--tag must look like key=value, got {pair!r}")
        tags[name] = value
    return tags


def _show(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: Format) -> None:
    if fmt is Format.json:
        print_json(list(rows))
    else:
        print_table(columns, [[row[c] for c in columns] for row in rows])


def _show_one(row: dict[str, Any], fmt: Format) -> None:
    if fmt is Format.json:
        print_json(row)
    else:
        print_table(["field", "value"], list(row.items()))


def _org(org: Org) -> dict[str, Any]:
    return {"id": org.id, "name": org.name, "created_at": org.created_at, "revoked_at": org.revoked_at}


def _team(team: Team) -> dict[str, Any]:
    return {
        "id": team.id,
        "org_id": team.org_id,
        "name": team.name,
        "cost_center": team.cost_center,
        "created_at": team.created_at,
        "revoked_at": team.revoked_at,
    }


def _user(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "team_id": user.team_id,
        "name": user.name,
        "email": user.email,
        "created_at": user.created_at,
        "revoked_at": user.revoked_at,
    }


def _orgs() -> typer.Typer:
    group = typer.Typer(help="Organisations: the top of the hierarchy.", no_args_is_help=True)

    @group.command("create")
    def create(name: str = typer.Argument(..., help="Org name."), fmt: Format = FORMAT_OPTION) -> None:
        """Create an org."""
        with cli_store() as store:
            _show_one(_org(store.create_org(name)), fmt)

    @group.command("list")
    def list_(include_revoked: bool = REVOKED_OPTION, fmt: Format = FORMAT_OPTION) -> None:
        """List orgs."""
        with cli_store() as store:
            rows = [_org(o) for o in store.list_orgs(include_revoked)]
        _show(rows, ["id", "name", "created_at", "revoked_at"], fmt)

    @group.command("revoke")
    def revoke(ref: str = typer.Argument(..., help="Org name or id."), fmt: Format = FORMAT_OPTION) -> None:
        """Revoke an org: every key under it stops working."""
        with cli_store() as store:
            _show_one(_org(store.revoke_org(ref)), fmt)

    return group


def _teams() -> typer.Typer:
    group = typer.Typer(help="Teams: spend is charged to a team and its cost center.", no_args_is_help=True)

    @group.command("create")
    def create(
        name: str = typer.Argument(..., help="Team name."),
        org: str = typer.Option(..., "--org", help="Org name or id."),
        cost_center: str = typer.Option(..., "--cost-center", help="Cost center to charge."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Create a team in an org."""
        with cli_store() as store:
            _show_one(_team(store.create_team(org, name, cost_center)), fmt)

    @group.command("list")
    def list_(include_revoked: bool = REVOKED_OPTION, fmt: Format = FORMAT_OPTION) -> None:
        """List teams."""
        with cli_store() as store:
            rows = [_team(t) for t in store.list_teams(include_revoked)]
        _show(rows, ["id", "org_id", "name", "cost_center", "created_at", "revoked_at"], fmt)

    @group.command("revoke")
    def revoke(ref: str = typer.Argument(..., help="Team name or id."), fmt: Format = FORMAT_OPTION) -> None:
        """Revoke a team: every key under it stops working."""
        with cli_store() as store:
            _show_one(_team(store.revoke_team(ref)), fmt)

    return group


def _users() -> typer.Typer:
    group = typer.Typer(help="Users: people within a team.", no_args_is_help=True)

    @group.command("create")
    def create(
        name: str = typer.Argument(..., help="User name."),
        team: str = typer.Option(..., "--team", help="Team name or id."),
        email: str | None = typer.Option(None, "--email", help="Email address."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Create a user in a team."""
        with cli_store() as store:
            _show_one(_user(store.create_user(team, name, email)), fmt)

    @group.command("list")
    def list_(include_revoked: bool = REVOKED_OPTION, fmt: Format = FORMAT_OPTION) -> None:
        """List users."""
        with cli_store() as store:
            rows = [_user(u) for u in store.list_users(include_revoked)]
        _show(rows, ["id", "team_id", "name", "email", "created_at", "revoked_at"], fmt)

    @group.command("revoke")
    def revoke(ref: str = typer.Argument(..., help="User name or id."), fmt: Format = FORMAT_OPTION) -> None:
        """Revoke a user: their keys stop working."""
        with cli_store() as store:
            _show_one(_user(store.revoke_user(ref)), fmt)

    return group


def _keys() -> typer.Typer:
    group = typer.Typer(help="Virtual keys: clients send one, not a provider key.", no_args_is_help=True)
    columns = ["id", "name", "prefix", "team_id", "user_id", "default_use_case", "expires_at", "revoked_at"]

    @group.command("create")
    def create(
        name: str = typer.Option(..., "--name", help="Key name (e.g. the machine or service using it)."),
        team: str = typer.Option(..., "--team", help="Team name or id."),
        user: str | None = typer.Option(None, "--user", help="User name or id (in the team)."),
        use_case: str | None = typer.Option(None, "--use-case", help="Default use case for its calls."),
        tag: list[str] = typer.Option([], "--tag", help="Default tag key=value (repeatable)."),
        expires: str | None = typer.Option(None, "--expires", help="Expiry: ISO date or datetime (UTC)."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Mint a virtual key. The secret is printed once and never stored."""
        with cli_store() as store:
            key, secret = service.create_key(
                store,
                name=name,
                team=team,
                user=user,
                use_case=use_case,
                tags=parse_tags(tag),
                expires_at=expires,
            )
        view = service.key_view(key)
        if fmt is Format.json:
            print_json({"key": secret, **view})
            return
        print_table(["field", "value"], list(view.items()))
        # Plain echo, not a table cell: the secret must never be wrapped or truncated.
        typer.echo(f"key: {secret}")
        typer.echo("Save this key now: it cannot be shown again (only its hash is stored).")

    @group.command("list")
    def list_(include_revoked: bool = REVOKED_OPTION, fmt: Format = FORMAT_OPTION) -> None:
        """List keys (prefixes only; secrets are never stored)."""
        with cli_store() as store:
            rows = [service.key_view(k) for k in store.list_keys(include_revoked)]
        _show(rows, columns, fmt)

    @group.command("revoke")
    def revoke(
        ref: str = typer.Argument(..., help="Key id, name or prefix."), fmt: Format = FORMAT_OPTION
    ) -> None:
        """Revoke a key (a running gateway stops accepting it within its key refresh interval)."""
        with cli_store() as store:
            _show_one(service.key_view(store.revoke_key(ref)), fmt)

    @group.command("limit")
    def limit(
        ref: str = typer.Argument(..., help="Key id, name or prefix."),
        rpm: int | None = typer.Option(None, "--rpm", help="Requests per minute (0: no limit)."),
        tpm: int | None = typer.Option(None, "--tpm", help="Tokens per minute (0: no limit)."),
        concurrency: int | None = typer.Option(None, "--concurrency", help="Calls in flight (0: no limit)."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Set a key's rate limits; limits not given stay as they are."""
        with cli_store() as store:
            _show_one(
                budget_service.set_key_limits(store, ref, rpm=rpm, tpm=tpm, concurrency=concurrency), fmt
            )

    return group


def register(app: typer.Typer) -> None:
    app.add_typer(_orgs(), name="orgs")
    app.add_typer(_teams(), name="teams")
    app.add_typer(_users(), name="users")
    app.add_typer(_keys(), name="keys")
