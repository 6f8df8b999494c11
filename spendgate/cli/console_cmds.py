"""`spendgate console link --user EMAIL`: a one-time sign-in link to the web console (15 minutes, once),
for the embedded default where no identity provider or auth proxy signs people in."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from spendgate.audit import cli_actor
from spendgate.cli.common import cli_store, settings
from spendgate.cli.present import VIEW_FORMAT_OPTION, ViewFormat, print_json


def _console() -> typer.Typer:
    group = typer.Typer(help="The web console under /ui/.", no_args_is_help=True)

    @group.command("link")
    def link(
        user: str = typer.Option(..., "--user", help="The user's email (or name or id)."),
        base_url: str | None = typer.Option(
            None,
            "--base-url",
            help="The console's address; default SPENDGATE_UI_PUBLIC_URL or http://127.0.0.1:8787.",
        ),
        fmt: ViewFormat = VIEW_FORMAT_OPTION,
    ) -> None:
        """Print a sign-in URL for USER, valid for 15 minutes, once."""
        from spendgate.console.links import mint

        root = base_url or settings().ui_public_url
        with cli_store() as store:
            url, person, expires = mint(store, cli_actor(), user, root, datetime.now(UTC))
        if fmt is ViewFormat.json:
            print_json({"url": url, "user": person.name, "email": person.email, "expires_at": expires})
        else:
            typer.echo(url)
            typer.echo(
                f"for {person.email or person.name}; valid until {expires} (15 minutes), once", err=True
            )

    return group


def register(app: typer.Typer) -> None:
    app.add_typer(_console(), name="console")
