"""`spendgate batches list`: Message Batches created through Spendgate, who pays for them, and
whether their calls are in the ledger yet (see docs/batches.md)."""

from __future__ import annotations

import dataclasses

import typer

from spendgate.cli import present as p
from spendgate.cli.common import cli_store
from spendgate.cli.present import FORMAT_OPTION, Format, emit

COLUMNS = [
    p.text("batch_id", "batch"),
    p.times("created_at", "created"),
    p.text("team_id", "team"),
    p.text("key_id", "key"),
    p.text("use_case", "use case"),
    p.counts("request_count", "requests"),
    p.times("metered_at", "metered", missing="not yet"),
    p.counts("metered_calls", "calls"),
    p.money("metered_usd", "cost"),
]


def _batches() -> typer.Typer:
    group = typer.Typer(help="Anthropic Message Batches created through Spendgate.", no_args_is_help=True)

    @group.command("list")
    def list_cmd(
        unmetered: bool = typer.Option(
            False, "--unmetered", help="Only batches whose results have not been read through Spendgate yet."
        ),
        limit: int = typer.Option(100, "--limit", min=1, help="Most batches to show, newest first."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Batches, newest first: creator, requests, and when (and at what cost) their calls were metered."""
        from spendgate.pricing import format_usd

        with cli_store() as store:
            batches = store.list_batches(unmetered=unmetered, limit=limit)
        rows = [dataclasses.asdict(b) for b in batches]
        # The table and CSV also show the cost as exact dollars; JSON keeps its fields as they are.
        shown = [
            {**r, "metered_usd": None if b.metered_cost_nanos is None else format_usd(b.metered_cost_nanos)}
            for r, b in zip(rows, batches, strict=True)
        ]
        emit(shown, fmt, COLUMNS, "Message Batches", document=rows)

    return group


def register(app: typer.Typer) -> None:
    app.add_typer(_batches(), name="batches")
