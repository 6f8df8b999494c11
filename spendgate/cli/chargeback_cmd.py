"""`spendgate chargeback` (also `spendgate report chargeback`): monthly spend by cost center, team
and use case, or the FinOps FOCUS 1.2 export (CSV or Parquet)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from spendgate.cli import present as p
from spendgate.cli.common import cli_store, fail, settings


class ChargebackFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    focus_csv = "focus-csv"
    focus_parquet = "focus-parquet"


CSV_FIELDS = [
    "month", "cost_center", "team_id", "team", "use_case", "requests", "cost_usd", "share_pct", "inferred_usd"
]  # fmt: skip
COLUMNS = [
    p.text("cost_center", "cost center"),
    p.text("team"),
    p.text("use_case", "use case"),
    p.counts("requests"),
    p.money("cost_usd", "cost"),
    p.pct("share_pct", "share"),
    p.money("inferred_usd", "inferred"),  # a use case's spend whose use case Spendgate inferred
]


def _lines(month: str, tree: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The tree as table lines (a cost center, its teams, their use cases, each on its own line)
    and as CSV rows (one per cost center, team and use case, exact USD)."""
    from decimal import Decimal

    from spendgate.pricing import format_usd

    total = sum(c["cost_nanos"] for c in tree)

    def line(node: dict[str, Any], **names: Any) -> dict[str, Any]:
        share = Decimal(node["cost_nanos"] * 100) / total if total else None
        return {
            **names,
            "requests": node["requests"],
            "cost_usd": format_usd(node["cost_nanos"]),
            "share_pct": None if share is None else str(round(share, 2)),
        }

    table: list[dict[str, Any]] = []
    leaves: list[dict[str, Any]] = []
    for center in tree:
        cc = center["cost_center"]
        table.append(line(center, cost_center=cc or p.missing_label("cost_center")))
        for team in center["teams"]:
            table.append(line(team, team=team["team"] or p.missing_label("team")))
            for uc in team["use_cases"]:
                inferred = format_usd(uc["inferred_nanos"])
                table.append({**line(uc, use_case=uc["use_case"]), "inferred_usd": inferred})
                leaves.append(
                    line(
                        uc,
                        month=month,
                        cost_center=cc,
                        team_id=team["team_id"],
                        team=team["team"],
                        use_case=uc["use_case"],
                    )
                    | {"inferred_usd": format_usd(uc["inferred_nanos"])}
                )
    total_line = line(
        {"requests": sum(c["requests"] for c in tree), "cost_nanos": total}, cost_center="total"
    )
    return [*table, total_line], leaves


def chargeback(
    month: str = typer.Option(..., "--month", help="The month, YYYY-MM (UTC)."),
    fmt: ChargebackFormat = typer.Option(ChargebackFormat.table, "--format", help="Output format."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write to this file (needed for Parquet)."
    ),
) -> None:
    """Monthly spend by cost center, team and use case; or the FinOps FOCUS 1.2 export.

    The one implementation: `spendgate report chargeback` is an alias of this command."""
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
        fail("--output needs --format json, csv, focus-csv or focus-parquet")
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
        table, leaves = _lines(month, tree)
        if fmt is ChargebackFormat.table:
            p.print_table(table[:-1], COLUMNS, f"Chargeback {month}", totals=table[-1:])
            return
        if fmt is ChargebackFormat.csv:
            text = p.csv_text(leaves, CSV_FIELDS)
        else:
            text = json.dumps(focus.summary_json(month, tree), indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)


def register(app: typer.Typer) -> None:
    app.command("chargeback")(chargeback)
