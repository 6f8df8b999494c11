"""What every command module shares: the invocation's settings and store, errors as one line, and
the arguments several commands parse (how output looks is `present.py`).

Light on purpose: building the CLI imports this and typer only; a command imports what it needs
when it runs, so `spendgate --help` and `spendgate spend` do not load the gateway, the report
libraries or an HTTP client.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from datetime import datetime

    from spendgate.config import Settings
    from spendgate.store import Store


REVOKED_OPTION = typer.Option(False, "--include-revoked", help="Also list revoked entries.")
RULES_OPTION = typer.Option(
    None,
    "--rules",
    help="A use-case rules TOML file; default: SPENDGATE_USE_CASE_RULES_FILE, else the built-in.",
)


# What one invocation has read (its settings), while it runs; None outside any invocation. Not
# click's current context: typer >= 0.26 carries its own copy of click, whose context click's
# get_current_context() never sees, so the settings were read again on every use.
_INVOCATION: ContextVar[dict[str, Settings] | None] = ContextVar("spendgate_cli_invocation", default=None)


@contextlib.contextmanager
def invocation() -> Iterator[None]:
    """One run of the command line (the root group wraps each in this): `settings()` reads the
    environment once inside it."""
    token = _INVOCATION.set({})
    try:
        yield
    finally:
        _INVOCATION.reset(token)


def settings() -> Settings:
    """This invocation's settings: read from the environment once, on first use (a new invocation
    reads them afresh)."""
    from spendgate.config import Settings

    read = _INVOCATION.get()
    if read is None:  # called outside a command (a test, another tool)
        return Settings()
    if "settings" not in read:
        read["settings"] = Settings()
    return read["settings"]


@contextlib.contextmanager
def cli_store() -> Iterator[Store]:
    """The configured store, migrated; expected errors become one line on stderr and exit 1."""
    from spendgate.store import Conflict, NotFound, open_store

    try:
        store = open_store(settings().database_url)
    except (ValueError, NotImplementedError) as exc:
        fail(str(exc))
    try:
        store.migrate()
        from spendgate.audit import audited, cli_actor

        # Changes through the CLI land in the audit log as made by SPENDGATE_ACTOR or the OS user.
        yield audited(store, cli_actor)
    except (NotFound, Conflict, ValueError) as exc:
        fail(str(exc))
    finally:
        store.close()


def fail(message: str) -> NoReturn:
    from spendgate.config import redact_urls

    typer.echo(f"error: {redact_urls(message)}", err=True)
    raise typer.Exit(1)


def parse_tags(pairs: Sequence[str]) -> dict[str, str]:
    tags = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--tag must look like key=value, got {pair!r}")
        tags[name] = value
    return tags


def moment(text: str | None, name: str = "--now") -> datetime | None:
    """An ISO date or time from the command line as an aware datetime (UTC unless it has an offset);
    None when not given."""
    from datetime import UTC, datetime

    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{name} must be an ISO date or time, got {text!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
