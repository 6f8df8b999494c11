"""`spendgate chargeback` (monthly spend by cost center, and the FOCUS 1.2 export) and
`spendgate forecast` (month-end projection against monthly budgets); both also answer as
`spendgate report chargeback` and `spendgate report forecast`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from spendgate.cli.admin_cmds import Format, cli_store, fail, print_json, print_table
from spendgate.cli.finance_cmds import _report_group
from spendgate.clock import iso
from spendgate.config import Settings
from spendgate.finance import focus
from spendgate.finance import forecast as fc
from spendgate.pricing import Pricer, format_usd


class ChargebackFormat(StrEnum):
    table = "table"
    json = "json"
    focus_csv = "focus-csv"
    focus_parquet = "focus-parquet"


class ForecastBy(StrEnum):
    team = "team"
    cost_center = "cost_center"


def _percent(part: int, whole: int) -> str:
    return f"{part * 100 / whole:.1f}%" if whole else "-"


def _summary_json(month: str, tree: list[dict[str, Any]]) -> dict[str, Any]:
    def money(node: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in node.items() if k not in ("cost_nanos", "teams", "use_cases")}
        out["cost_usd"] = format_usd(node["cost_nanos"])
        if "teams" in node:
            out["teams"] = [money(t) for t in node["teams"]]
        if "use_cases" in node:
            out["use_cases"] = [money(u) for u in node["use_cases"]]
        return out

    total = sum(c["cost_nanos"] for c in tree)
    return {"month": month, "total_usd": format_usd(total), "cost_centers": [money(c) for c in tree]}


def _summary_table(month: str, tree: list[dict[str, Any]]) -> None:
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


def _now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def register(app: typer.Typer) -> None:
    @app.command()
    def chargeback(
        month: str = typer.Option(..., "--month", help="The month, YYYY-MM (UTC)."),
        fmt: ChargebackFormat = typer.Option(ChargebackFormat.table, "--format", help="Output format."),
        output: Path | None = typer.Option(
            None, "--output", "-o", help="Write to this file (needed for Parquet)."
        ),
    ) -> None:
        """Monthly spend by cost center, team and use case; or the FinOps FOCUS 1.2 export."""
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
            lines = focus.focus_rows(rows, month, Pricer(Settings().price_overrides_file))
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
            text = json.dumps(_summary_json(month, tree), indent=2) + "\n"
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text)

    @app.command("forecast")
    def forecast_cmd(
        by: ForecastBy = typer.Option(ForecastBy.team, "--by", help="Project per team or cost center."),
        month: str | None = typer.Option(None, "--month", help="YYYY-MM (UTC); default: this month."),
        now_text: str | None = typer.Option(None, "--now", help="Pretend it is this ISO time (for tests)."),
        fmt: Format = typer.Option(Format.table, "--format", help="Output format."),
    ) -> None:
        """Month-end spend projection: month-to-date + 7-day run-rate x days left, against budgets."""
        now = _now(now_text)
        try:
            start, end = focus.month_bounds(month or now.strftime("%Y-%m"))
        except ValueError as exc:
            fail(str(exc))
        if start > now:
            fail(f"{month} has not started yet")
        now = min(now, end)
        with cli_store() as store:
            mtd = store.spend_totals(by.value, iso(start), iso(now))
            rate_start, rate_end = fc.run_rate_window(now)
            recent = store.spend_totals(by.value, iso(rate_start), iso(rate_end))
            budgets = fc.monthly_budgets(store.list_budgets(), by.value)
            names = (
                {t.id: t.name for t in store.list_teams(include_revoked=True)}
                if by is ForecastBy.team
                else {}
            )
        projections = fc.forecast(mtd, recent, budgets, names, fc.days_left(now, end))
        rows = [fc.as_dict(p, by.value, format_usd) for p in projections]
        if fmt is Format.json:
            print_json(rows)
            return
        columns = [
            "mtd_usd",
            "run_rate_usd_per_day",
            "projected_usd",
            "budget_usd",
            "projected_percent_of_budget",
        ]
        print_table(
            [
                by.value,
                "mtd_usd",
                "usd_per_day_7d",
                "projected_usd",
                "budget_usd",
                "projected_%",
                "over_by_usd",
            ],
            [[r[by.value] or "(none)", *(r[c] for c in columns), r["over_by_usd"]] for r in rows],
            f"Month-end forecast {start:%Y-%m} ({float(fc.days_left(now, end)):.2f} days left; "
            "run-rate = average of the last 7 complete UTC days)",
        )

    # The same commands under `report`, beside the finance and governance reports.
    report = _report_group(app)
    report.command("chargeback")(chargeback)
    report.command("forecast")(forecast_cmd)
