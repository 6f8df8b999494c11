"""`spendgate spend` (spend grouped by a dimension) and `spendgate ledger` (latest calls, export,
quarantine, rollups)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from spendgate.cli import present as p
from spendgate.cli.common import RULES_OPTION, cli_store, fail
from spendgate.cli.present import FORMAT_OPTION, VIEW_FORMAT_OPTION, Format, ViewFormat, emit, emit_one
from spendgate.dimensions import SPEND_BY
from spendgate.extras import require
from spendgate.models import TOKEN_COLUMNS


class ExportFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


def _to_stdout(write: Callable[[], int]) -> int:
    """Run a writer on stdout; a reader that stops early (`| head`) ends it quietly."""
    import os
    import sys

    try:
        count = write()
        sys.stdout.flush()
        return count
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit: point it at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None


def spend_columns(by: str) -> list[str]:
    split = ["declared_usd", "inferred_usd", "inferred_requests"] if by == "use_case" else []
    return [by, "id", "requests", *TOKEN_COLUMNS, "estimated_requests", "cost_usd", *split]


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
        # by use case: the part of it whose use case Spendgate inferred (none was declared)
        *([p.money("inferred_usd", "inferred")] if by == "use_case" else []),
    ]


def spend_total(rows: Sequence[dict[str, Any]], by: str) -> dict[str, Any]:
    total: dict[str, Any] = {name: sum(row[name] for row in rows) for name in ("requests", *TOKEN_COLUMNS)}
    if by == "use_case":
        total["inferred_usd"] = total_usd([{"cost_usd": row["inferred_usd"]} for row in rows])
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
    p.token("status"),
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
        from spendgate.cli import usecase_cmds  # here: `spend` imports no other command module

        usecase_cmds.explain(request_id, rules, fmt)

    @ledger.command("rebuild-rollups")
    def rebuild_rollups(fmt: Format = FORMAT_OPTION) -> None:
        """Recompute the daily rollups that reports read from the raw ledger (one transaction).

        The ledger writer keeps them in step; run this only if you suspect drift, e.g. after
        editing ledger rows by hand."""
        with cli_store() as store, p.progress("Rebuilding the rollups (a month at a time)", fmt=fmt) as bar:
            counts = store.rebuild_rollups(on_progress=bar)
        if fmt is not Format.table:
            emit_one(counts, fmt)
            return
        typer.echo(
            f"rebuilt ledger_daily ({p.count(counts['daily_rows'])} rows) and ledger_work_monthly "
            f"({p.count(counts['tagged_calls'])} tagged calls)"
        )

    @ledger.command("export")
    def export(
        since: str | None = typer.Option(None, "--since", help="From this ISO date/datetime (inclusive)."),
        until: str | None = typer.Option(None, "--until", help="Up to this ISO date/datetime (exclusive)."),
        fmt: ExportFormat = typer.Option(ExportFormat.csv, "--format", help="csv, jsonl or parquet."),
        output: Path | None = typer.Option(
            None, "--output", "-o", help="Write to this file (default: stdout; Parquet needs a file)."
        ),
    ) -> None:
        """Every ledger row in the period, oldest first, streamed: CSV, JSON Lines or Parquet
        (the `parquet` extra; one row group per 25,000 rows). Each row also has cost_usd, exact."""
        import contextlib
        import sys

        from spendgate.admin.service import maybe_time
        from spendgate.ledger import export as ex

        if fmt is ExportFormat.parquet and output is None:
            fail("--format parquet needs --output FILE")
        if fmt is ExportFormat.parquet:
            require("parquet", "the ledger's Parquet export (--format parquet)")
        with cli_store() as store:
            first, end = maybe_time(since), maybe_time(until)
            # A bar only while writing a file: on a terminal stdout would be the export itself.
            with (
                contextlib.closing(store.iter_ledger_rows(first, end)) as rows,
                p.progress("Exporting ledger rows", quiet=output is None) as bar,
            ):
                if fmt is ExportFormat.parquet:
                    assert output is not None
                    count = ex.write_parquet(rows, output, bar)
                elif output is not None:
                    with output.open("w", encoding="utf-8", newline="") as out:
                        count = ex.WRITERS[fmt.value](rows, out, bar)
                else:
                    count = _to_stdout(lambda: ex.WRITERS[fmt.value](rows, sys.stdout, bar))
        if output is not None:
            typer.echo(f"wrote {p.count(count)} ledger rows to {output}", err=True)

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
