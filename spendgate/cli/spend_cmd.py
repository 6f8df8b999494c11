"""`spendgate spend` (spend grouped by a dimension) and `spendgate ledger` (latest calls, quarantine)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from spendgate.cli import usecase_cmds
from spendgate.cli.common import (
    Format,
    ReportFormat,
    cli_store,
    console,
    emit_report,
    print_json,
    print_table,
)
from spendgate.cli.usecase_cmds import RULES_OPTION
from spendgate.dimensions import SPEND_BY
from spendgate.models import TOKEN_COLUMNS


def spend_columns(by: str) -> list[str]:
    return [by, "id", "requests", *TOKEN_COLUMNS, "estimated_requests", "cost_usd"]


def total_usd(rows: Sequence[dict[str, Any]]) -> str:
    from decimal import Decimal

    from spendgate.pricing import NANOS_PER_USD, format_usd

    # Each cost_usd came from integer nanos, so this round trip is exact.
    nanos = sum(int(Decimal(row["cost_usd"]) * NANOS_PER_USD) for row in rows)
    return format_usd(nanos)


def _spend_table(rows: Sequence[dict[str, Any]], by: str, title: str) -> None:
    from rich.table import Table

    numbers = ["requests", "input_tokens", "cache_write", "cache_read_tokens", "output_tokens", "cost_usd"]
    table = Table(title=title)
    table.add_column(by)
    for name in numbers:
        table.add_column(name.removesuffix("_tokens"), justify="right")

    def cells(row: dict[str, Any]) -> list[str]:
        cache_write = row["cache_write_5m_tokens"] + row["cache_write_1h_tokens"]
        return [
            str(row["requests"]),
            str(row["input_tokens"]),
            str(cache_write),
            str(row["cache_read_tokens"]),
            str(row["output_tokens"]),
            row["cost_usd"],
        ]

    for row in rows:
        table.add_row("(none)" if row[by] is None else str(row[by]), *cells(row))
    totals: dict[str, Any] = {
        name: sum(row[name] for row in rows)
        for name in (
            "requests",
            "input_tokens",
            "cache_write_5m_tokens",
            "cache_write_1h_tokens",
            "cache_read_tokens",
            "output_tokens",
        )
    }
    totals["cost_usd"] = total_usd(rows)
    table.add_section()
    table.add_row("total", *cells(totals), style="bold")
    console().print(table)


def register(app: typer.Typer) -> None:
    @app.command()
    def spend(
        by: str = typer.Option("team", "--by", help="Group by: " + "|".join(SPEND_BY) + "."),
        since: str | None = typer.Option(None, "--since", help="From this ISO date/datetime (inclusive)."),
        until: str | None = typer.Option(None, "--until", help="Up to this ISO date/datetime (exclusive)."),
        fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", help="Output format."),
    ) -> None:
        """Spend grouped by one dimension, in exact USD."""
        from spendgate.admin import service

        with cli_store() as store:
            rows = service.spend_report(store, by, since, until)
        title = f"Spend by {by} ({since or 'start'} .. {until or 'now'})"
        emit_report(rows, fmt, spend_columns(by), lambda r, t: _spend_table(r, by, t), title)

    ledger = typer.Typer(help="The ledger: one row per call.", no_args_is_help=True)

    @ledger.command("tail")
    def tail(
        limit: int = typer.Option(20, "--limit", "-n", help="How many of the latest rows."),
        since: str | None = typer.Option(None, "--since", help="From this ISO date/datetime (inclusive)."),
        until: str | None = typer.Option(None, "--until", help="Up to this ISO date/datetime (exclusive)."),
        fmt: Format = typer.Option(Format.table, "--format", help="Output format."),
    ) -> None:
        """The latest ledger rows, oldest first."""
        from spendgate.admin import service

        with cli_store() as store:
            rows = service.ledger_tail(store, limit, since, until)
        if fmt is Format.json:
            print_json(rows)
            return
        columns = [
            "request_id",
            "started_at",
            "team",
            "use_case",
            "model",
            "input",
            "cache_read",
            "output",
            "cost_usd",
            "status",
            "estimated",
        ]
        print_table(
            columns,
            [
                [
                    r["request_id"],
                    r["started_at"],
                    r["team"],
                    r["use_case"],
                    r["upstream_model"] or r["requested_model"],
                    r["input_tokens"],
                    r["cache_read_tokens"],
                    r["output_tokens"],
                    r["cost_usd"],
                    r["status"],
                    "yes" if r["estimated"] else "",
                ]
                for r in rows
            ],
        )

    @ledger.command("explain-use-case")
    def explain_use_case(
        request_id: str = typer.Argument(..., help="The call's request id (x-spendgate-request-id)."),
        rules: Path | None = RULES_OPTION,
        fmt: Format = typer.Option(Format.table, "--format", help="Output format."),
    ) -> None:
        """Why a call has its use case: where it was declared, or which rule inferred it and on what."""
        usecase_cmds.explain(request_id, rules, fmt)

    @ledger.command("rebuild-rollups")
    def rebuild_rollups() -> None:
        """Recompute the daily rollups that reports read from the raw ledger (one transaction).

        The ledger writer keeps them in step; run this only if you suspect drift, e.g. after
        editing ledger rows by hand."""
        with cli_store() as store:
            counts = store.rebuild_rollups()
        typer.echo(
            f"rebuilt ledger_daily ({counts['daily_rows']} rows) and ledger_work_monthly "
            f"({counts['tagged_calls']} tagged calls)"
        )

    @ledger.command("quarantine")
    def quarantine(
        limit: int = typer.Option(50, "--limit", "-n", help="How many of the newest rows."),
        fmt: Format = typer.Option(Format.table, "--format", help="Output format."),
    ) -> None:
        """Rows the database refused for good (kept whole, blocking nothing), newest first."""
        with cli_store() as store:
            rows = store.quarantined_ledger_rows(limit)
        if fmt is Format.json:
            print_json(rows)
            return
        print_table(
            ["request_id", "quarantined_at", "reason"],
            [[r["request_id"], r["quarantined_at"], r["reason"]] for r in rows],
        )

    app.add_typer(ledger, name="ledger")
