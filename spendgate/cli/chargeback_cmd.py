"""`spendgate chargeback` (also `spendgate report chargeback`): monthly spend by cost center, team
and use case, or the FinOps FOCUS 1.2 export (CSV or Parquet)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from spendgate.cli.common import cli_store, fail, print_table, settings


class ChargebackFormat(StrEnum):
    table = "table"
    json = "json"
    focus_csv = "focus-csv"
    focus_parquet = "focus-parquet"


def _percent(part: int, whole: int) -> str:
    return f"{part * 100 / whole:.1f}%" if whole else "-"


def _summary_table(month: str, tree: list[dict[str, Any]]) -> None:
    from spendgate.pricing import format_usd

    total = sum(c["cost_nanos"] for c in tree)
    rows: list[list[Any]] = []
    for center in tree:
        cc = center["cost_center"] or "(none)"
        rows.append(
            [
                cc,
                "",
                "",
                center["requests"],
                format_usd(center["cost_nanos"]),
                _percent(center["cost_nanos"], total),
            ]
        )
        for team in center["teams"]:
            name = team["team"] or "(none)"
            rows.append(
                [
                    "",
                    name,
                    "",
                    team["requests"],
                    format_usd(team["cost_nanos"]),
                    _percent(team["cost_nanos"], total),
                ]
            )
            for uc in team["use_cases"]:
                rows.append(
                    [
                        "",
                        "",
                        uc["use_case"],
                        uc["requests"],
                        format_usd(uc["cost_nanos"]),
                        _percent(uc["cost_nanos"], total),
                    ]
                )
    rows.append(
        ["total", "", "", sum(c["requests"] for c in tree), format_usd(total), _percent(total, total)]
    )
    print_table(
        ["cost_center", "team", "use_case", "requests", "cost_usd", "share"], rows, f"Chargeback {month}"
    )


def chargeback(
    month: str = typer.Option(..., "--month", help="The month, YYYY-MM (UTC)."),
    fmt: ChargebackFormat = typer.Option(ChargebackFormat.table, "--format", help="Output format."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write to this file (needed for Parquet)."
    ),
) -> None:
    """Monthly spend by cost center, team and use case; or the FinOps FOCUS 1.2 export."""
    from spendgate.clock import iso
    from spendgate.finance import focus
    from spendgate.pricing import Pricer

    try:
        start, end = focus.month_bounds(month)
    except ValueError as exc:
        fail(str(exc))
    if fmt is ChargebackFormat.focus_parquet and output is None:
        fail("--format focus-parquet needs --output FILE")
    if fmt is ChargebackFormat.table and output is not None:
        fail("--output needs --format json, focus-csv or focus-parquet")
    with cli_store() as store:
        rows = store.chargeback_rows(iso(start), iso(end))
    if fmt in (ChargebackFormat.focus_csv, ChargebackFormat.focus_parquet):
        lines = focus.focus_rows(rows, month, Pricer(settings().price_overrides_file))
        if fmt is ChargebackFormat.focus_parquet:
            assert output is not None
            focus.write_parquet(lines, output)
            typer.echo(f"wrote {len(lines)} FOCUS rows to {output}", err=True)
            return
        text = focus.to_csv(lines)
    else:
        tree = focus.summarize(rows)
        if fmt is ChargebackFormat.table:
            _summary_table(month, tree)
            return
        text = json.dumps(focus.summary_json(month, tree), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)


def register(app: typer.Typer) -> None:
    app.command("chargeback")(chargeback)
