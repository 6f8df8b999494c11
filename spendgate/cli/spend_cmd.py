"""`spendgate spend` (spend grouped by a dimension) and `spendgate ledger` (latest calls, quarantine)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from spendgate.cli import present as p
from spendgate.cli import usecase_cmds
from spendgate.cli.common import cli_store
from spendgate.cli.present import FORMAT_OPTION, VIEW_FORMAT_OPTION, Format, ViewFormat, emit
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


def _cache_write(row: p.Row) -> int:
    return int(row["cache_write_5m_tokens"]) + int(row["cache_write_1h_tokens"])


def spend_table_columns(by: str) -> list[p.Col]:
    """The spend table: one label, the token counts (both cache writes as one), the exact cost."""
    return [
        p.label(by),
        p.counts("requests"),
        p.counts("input_tokens", "input"),
        p.counts("cache_write", "cache write", get=_cache_write),
        p.counts("cache_read_tokens", "cache read"),
        p.counts("output_tokens", "output"),
        p.money("cost_usd", "cost"),
    ]


def spend_total(rows: Sequence[dict[str, Any]], by: str) -> dict[str, Any]:
    total: dict[str, Any] = {name: sum(row[name] for row in rows) for name in ("requests", *TOKEN_COLUMNS)}
    return {**total, by: "total", "cost_usd": total_usd(rows)}


TAIL_COLUMNS = [
    p.text("request_id"),
    p.times("started_at", "started"),
    p.label("team"),
    p.text("use_case", "use case"),
    p.text("model", get=lambda r: r["upstream_model"] or r["requested_model"]),
    p.counts("input_tokens", "input"),
    p.counts("cache_read_tokens", "cache read"),
    p.counts("output_tokens", "output"),
    p.money("cost_usd", "cost", 6),  # one call: a fraction of a cent shows
    p.text("status"),
    p.flag("estimated"),
]


def register(app: typer.Typer) -> None:
    @app.command()
    def spend(
        by: str = typer.Option("team", "--by", help="Group by: " + "|".join(SPEND_BY) + "."),
        since: str | None = typer.Option(None, "--since", help="From this ISO date/datetime (inclusive)."),
        until: str | None = typer.Option(None, "--until", help="Up to this ISO date/datetime (exclusive)."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Spend grouped by one dimension, in exact USD."""
        from spendgate.admin import service

        with cli_store() as store:
            rows = service.spend_report(store, by, since, until)
        title = f"Spend by {by} ({since or 'start'} .. {until or 'now'})"
        emit(
            rows,
            fmt,
            spend_table_columns(by),
            title,
            totals=[spend_total(rows, by)],
            fields=spend_columns(by),
        )

    ledger = typer.Typer(help="The ledger: one row per call.", no_args_is_help=True)

    @ledger.command("tail")
    def tail(
        limit: int = typer.Option(20, "--limit", "-n", help="How many of the latest rows."),
        since: str | None = typer.Option(None, "--since", help="From this ISO date/datetime (inclusive)."),
        until: str | None = typer.Option(None, "--until", help="Up to this ISO date/datetime (exclusive)."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """The latest ledger rows, oldest first."""
        from spendgate.admin import service

        with cli_store() as store:
            rows = service.ledger_tail(store, limit, since, until)
        emit(rows, fmt, TAIL_COLUMNS)

    @ledger.command("explain-use-case")
    def explain_use_case(
        request_id: str = typer.Argument(..., help="The call's request id (x-spendgate-request-id)."),
        rules: Path | None = RULES_OPTION,
        fmt: ViewFormat = VIEW_FORMAT_OPTION,
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
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Rows the database refused for good (kept whole, blocking nothing), newest first."""
        with cli_store() as store:
            rows = store.quarantined_ledger_rows(limit)
        columns = [p.text("request_id"), p.times("quarantined_at", "quarantined"), p.text("reason")]
        emit(rows, fmt, columns)

    app.add_typer(ledger, name="ledger")
