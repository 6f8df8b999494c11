"""What every command module shares: the invocation's settings and store, errors as one line, and
output as a table, JSON or CSV.

Light on purpose: building the CLI imports this and typer only; a command imports what it needs
when it runs, so `spendgate --help` and `spendgate spend` do not load the gateway, the report
libraries or an HTTP client.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NoReturn

import click
import typer

if TYPE_CHECKING:
    from datetime import datetime

    from rich.console import Console

    from spendgate.config import Settings
    from spendgate.store import Store


class Format(StrEnum):
    table = "table"
    json = "json"


class ReportFormat(StrEnum):
    """A grouped report also comes as CSV."""

    table = "table"
    json = "json"
    csv = "csv"


FORMAT_OPTION = typer.Option(Format.table, "--format", help="Output format.")
REVOKED_OPTION = typer.Option(False, "--include-revoked", help="Also list revoked entries.")


def settings() -> Settings:
    """This invocation's settings: read from the environment once, on first use, and kept on the
    command line's root context (a new invocation reads them afresh)."""
    from spendgate.config import Settings

    ctx = click.get_current_context(silent=True)
    if ctx is None:  # called outside a command (a test, another tool)
        return Settings()
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings()
    return root.obj


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


def show(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: Format) -> None:
    """Rows as JSON, or the named columns as a table."""
    if fmt is Format.json:
        print_json(list(rows))
    else:
        print_table(columns, [[row[c] for c in columns] for row in rows])


def show_one(row: dict[str, Any], fmt: Format) -> None:
    """One record as JSON, or a field/value table."""
    if fmt is Format.json:
        print_json(row)
    else:
        print_table(["field", "value"], list(row.items()))


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def emit_report(
    rows: Sequence[dict[str, Any]],
    fmt: ReportFormat,
    columns: Sequence[str],
    table: Callable[[Sequence[dict[str, Any]], str], None],
    title: str,
) -> None:
    """A grouped report as JSON, CSV or a table: shared by `spend` and `savings`."""
    if fmt is ReportFormat.json:
        print_json(rows)
    elif fmt is ReportFormat.csv:
        typer.echo(to_csv(rows, columns), nl=False)
    else:
        table(rows, title)


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
