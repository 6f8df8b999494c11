"""`spendgate forecast` (also `spendgate report forecast`): month-end spend projection against the
monthly budgets of each team or cost center."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

import typer

from spendgate.cli import present as p
from spendgate.cli.common import cli_store, fail, moment
from spendgate.cli.present import FORMAT_OPTION, Format, emit


class ForecastBy(StrEnum):
    team = "team"
    cost_center = "cost_center"


def forecast(
    by: ForecastBy = typer.Option(ForecastBy.team, "--by", help="Project per team or cost center."),
    month: str | None = typer.Option(None, "--month", help="YYYY-MM (UTC); default: this month."),
    now_text: str | None = typer.Option(None, "--now", help="Pretend it is this ISO time (for tests)."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Month-end spend projection: month-to-date + 7-day run-rate x days left, against budgets.

    The one implementation: `spendgate report forecast` is an alias of this command."""
    from spendgate.clock import iso
    from spendgate.finance import focus
    from spendgate.finance import forecast as fc
    from spendgate.pricing import format_usd

    now = moment(now_text) or datetime.now(UTC)
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
        names = store.names("team") if by is ForecastBy.team else {}
    projections = fc.forecast(mtd, recent, budgets, names, fc.days_left(now, end))
    rows = [fc.as_dict(p, by.value, format_usd) for p in projections]
    columns = [
        p.label(by.value),
        p.money("mtd_usd", "month to date"),
        p.money("run_rate_usd_per_day", "per day (7d)"),
        p.money("projected_usd", "projected"),
        p.money("budget_usd", "budget", 2),
        p.pct("projected_percent_of_budget", "of budget"),
        p.money("over_by_usd", "over by"),
    ]
    title = f"Month-end forecast {start:%Y-%m} ({float(fc.days_left(now, end)):.2f} days left)"
    note = (
        "projected = month to date + run-rate x days left; run-rate = average of the last 7 complete UTC days"
    )
    emit(rows, fmt, columns, title, notes=[note])


def register(app: typer.Typer) -> None:
    app.command("forecast")(forecast)
