"""`spendgate roles grant|revoke|list|slack`: who may do what in the web console.

Operations live in `spendgate.roles` (shared with the admin API and the console); every grant and
revocation lands in the audit log with the CLI's actor (SPENDGATE_ACTOR, else the OS user).
"""

from __future__ import annotations

import typer

from spendgate.audit import cli_actor
from spendgate.cli import present as p
from spendgate.cli.common import cli_store
from spendgate.cli.present import FORMAT_OPTION, Format, emit, emit_one
from spendgate.store.people import ROLES

ROLE_OPTION = typer.Option(..., "--role", help="|".join(ROLES) + ".")
USER_OPTION = typer.Option(..., "--user", help="User name, id or email.")
TEAM_OPTION = typer.Option(None, "--team", help="The team a lead leads (lead only).")
COLUMNS = [*(p.text(c) for c in ("user", "email", "role", "team", "granted_by")), p.times("granted_at")]


def _roles() -> typer.Typer:
    group = typer.Typer(help="Console roles: admin, finance, approver, lead of a team.", no_args_is_help=True)

    @group.command("grant")
    def grant(
        user: str = USER_OPTION,
        role: str = ROLE_OPTION,
        team: str | None = TEAM_OPTION,
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Give a user a role (lead: of --team). Granting a role already held changes nothing."""
        from spendgate import roles

        with cli_store() as store:
            emit_one(roles.grant(store, cli_actor(), user, role, team), fmt)

    @group.command("revoke")
    def revoke(
        user: str = USER_OPTION,
        role: str = ROLE_OPTION,
        team: str | None = TEAM_OPTION,
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Take a role away (lead: of --team)."""
        from spendgate import roles

        with cli_store() as store:
            emit_one(roles.revoke(store, cli_actor(), user, role, team), fmt)

    @group.command("list")
    def list_(
        user: str | None = typer.Option(None, "--user", help="Only this user's roles."),
        team: str | None = typer.Option(None, "--team", help="Only this team's leads."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Role grants, oldest first."""
        from spendgate import roles

        with cli_store() as store:
            rows = roles.list_grants(store, user, team)
        emit(rows, fmt, COLUMNS)

    @group.command("slack")
    def slack(
        user: str = USER_OPTION,
        member_id: str = typer.Option(..., "--member-id", help="Slack member id (U0123ABC); '' to clear."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Where a lead is paged on Slack (else by email): their Slack member id."""
        with cli_store() as store:
            person = store.set_user_slack(user, member_id.strip() or None)  # audited by cli_store
            emit_one(
                {"user": person.name, "email": person.email, "slack_member_id": person.slack_member_id}, fmt
            )

    return group


def register(app: typer.Typer) -> None:
    app.add_typer(_roles(), name="roles")
