"""`spendgate orgs|teams|users|keys ...`: manage principals straight in the database.

The CLI opens the store itself (no server needed), so it works on a fresh machine.
The operations are the ones the HTTP admin API uses (`spendgate.admin.service`, `budget_service`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from spendgate.cli import present as p
from spendgate.cli.common import REVOKED_OPTION, cli_store, parse_tags
from spendgate.cli.present import FORMAT_OPTION, Format, emit, emit_one

if TYPE_CHECKING:
    from spendgate.models import Org, Team, User


TIMES = [p.times("created_at"), p.times("revoked_at")]


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
            emit_one(_org(store.create_org(name)), fmt)

    @group.command("list")
    def list_(include_revoked: bool = REVOKED_OPTION, fmt: Format = FORMAT_OPTION) -> None:
        """List orgs."""
        with cli_store() as store:
            rows = [_org(o) for o in store.list_orgs(include_revoked)]
        emit(rows, fmt, [p.text("id"), p.text("name"), *TIMES])

    @group.command("revoke")
    def revoke(ref: str = typer.Argument(..., help="Org name or id."), fmt: Format = FORMAT_OPTION) -> None:
        """Revoke an org: every key under it stops working."""
        with cli_store() as store:
            emit_one(_org(store.revoke_org(ref)), fmt)

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
            emit_one(_team(store.create_team(org, name, cost_center)), fmt)

    @group.command("list")
    def list_(include_revoked: bool = REVOKED_OPTION, fmt: Format = FORMAT_OPTION) -> None:
        """List teams."""
        with cli_store() as store:
            rows = [_team(t) for t in store.list_teams(include_revoked)]
        emit(rows, fmt, [*(p.text(c) for c in ("id", "org_id", "name", "cost_center")), *TIMES])

    @group.command("revoke")
    def revoke(ref: str = typer.Argument(..., help="Team name or id."), fmt: Format = FORMAT_OPTION) -> None:
        """Revoke a team: every key under it stops working."""
        with cli_store() as store:
            emit_one(_team(store.revoke_team(ref)), fmt)

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
            emit_one(_user(store.create_user(team, name, email)), fmt)

    @group.command("list")
    def list_(include_revoked: bool = REVOKED_OPTION, fmt: Format = FORMAT_OPTION) -> None:
        """List users."""
        with cli_store() as store:
            rows = [_user(u) for u in store.list_users(include_revoked)]
        emit(rows, fmt, [*(p.text(c) for c in ("id", "team_id", "name", "email")), *TIMES])

    @group.command("revoke")
    def revoke(ref: str = typer.Argument(..., help="User name or id."), fmt: Format = FORMAT_OPTION) -> None:
        """Revoke a user: their keys stop working."""
        with cli_store() as store:
            emit_one(_user(store.revoke_user(ref)), fmt)

    return group


def _keys() -> typer.Typer:
    group = typer.Typer(help="Virtual keys: clients send one, not a provider key.", no_args_is_help=True)
    columns = [p.text("id"), p.text("name"), p.token("prefix")]
    columns += [p.text(c) for c in ("team_id", "user_id", "default_use_case")]
    columns += [p.times("expires_at"), p.times("revoked_at")]

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
        from spendgate.admin import service

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
        if fmt is not Format.table:
            emit_one({"key": secret, **view}, fmt)
            return
        emit_one(view, fmt)
        # Plain echo, not a table cell: the secret must never be wrapped or truncated.
        typer.echo(f"key: {secret}")
        typer.echo("Save this key now: it cannot be shown again (only its hash is stored).")

    @group.command("list")
    def list_(include_revoked: bool = REVOKED_OPTION, fmt: Format = FORMAT_OPTION) -> None:
        """List keys (prefixes only; secrets are never stored)."""
        from spendgate.admin import service

        with cli_store() as store:
            rows = [service.key_view(k) for k in store.list_keys(include_revoked)]
        emit(rows, fmt, columns)

    @group.command("revoke")
    def revoke(
        ref: str = typer.Argument(..., help="Key id, name or prefix."), fmt: Format = FORMAT_OPTION
    ) -> None:
        """Revoke a key (a running gateway stops accepting it within its key refresh interval)."""
        from spendgate.admin import service

        with cli_store() as store:
            emit_one(service.key_view(store.revoke_key(ref)), fmt)

    @group.command("limit")
    def limit(
        ref: str = typer.Argument(..., help="Key id, name or prefix."),
        rpm: int | None = typer.Option(None, "--rpm", help="Requests per minute (0: no limit)."),
        tpm: int | None = typer.Option(None, "--tpm", help="Tokens per minute (0: no limit)."),
        concurrency: int | None = typer.Option(None, "--concurrency", help="Calls in flight (0: no limit)."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Set a key's rate limits; limits not given stay as they are."""
        from spendgate.admin import budget_service

        with cli_store() as store:
            emit_one(
                budget_service.set_key_limits(store, ref, rpm=rpm, tpm=tpm, concurrency=concurrency), fmt
            )

    return group


def register(app: typer.Typer) -> None:
    app.add_typer(_orgs(), name="orgs")
    app.add_typer(_teams(), name="teams")
    app.add_typer(_users(), name="users")
    app.add_typer(_keys(), name="keys")
