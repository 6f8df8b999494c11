"""`spendgate batches list`: Message Batches created through Spendgate, who pays for them, and
whether their calls are in the ledger yet (see docs/batches.md)."""

from __future__ import annotations

import dataclasses

import typer

from spendgate.cli.common import FORMAT_OPTION, Format, cli_store, print_json, print_table


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
        if fmt is Format.json:
            print_json([dataclasses.asdict(b) for b in batches])
            return
        rows = [
            [
                b.batch_id,
                b.created_at,
                b.team_id,
                b.key_id,
                b.use_case,
                b.request_count,
                b.metered_at or "not yet",
                b.metered_calls if b.metered_calls is not None else "",
                format_usd(b.metered_cost_nanos) if b.metered_cost_nanos is not None else "",
            ]
            for b in batches
        ]
        columns = ["batch", "created", "team", "key", "use_case", "requests", "metered", "calls", "cost_usd"]
        print_table(columns, rows, "Message Batches")

    return group


def register(app: typer.Typer) -> None:
    app.add_typer(_batches(), name="batches")
