"""The `spendgate report` group, declared here with all its commands: `finance` and `governance`
(the two audiences' reports as HTML and PDF), `run-due` (the scheduled ones, once, for cron),
`schedule`, and `chargeback`, `forecast` and `cost-per-pr`, whose commands live in their own
modules (`chargeback` and `forecast` also answer at the top level)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from spendgate.cli.chargeback_cmd import chargeback
from spendgate.cli.common import (
    FORMAT_OPTION,
    Format,
    cli_store,
    fail,
    moment,
    print_json,
    print_table,
    settings,
)
from spendgate.cli.finance_cmds import cost_per_pr
from spendgate.cli.forecast_cmd import forecast

if TYPE_CHECKING:  # the report libraries load when a report is made
    from spendgate.reports.schedule import Schedule


class OutputFormat(StrEnum):
    html = "html"
    pdf = "pdf"
    both = "both"


FORMAT = typer.Option(OutputFormat.both, "--format", help="html, pdf or both.")
OUTPUT = typer.Option(
    Path("."),
    "--output",
    "-o",
    help="Folder to write into (default: here), or a file name ending .html/.pdf with one format.",
)
SCHEDULE_FILE = typer.Option(None, "--file", help="The schedule (default: SPENDGATE_REPORTS_FILE).")
NOW = typer.Option(None, "--now", help="Pretend it is this ISO time (for tests and cron catch-up).")


def _formats(fmt: OutputFormat) -> tuple[str, ...]:
    from spendgate.reports.produce import FORMATS

    return FORMATS if fmt is OutputFormat.both else (fmt.value,)


def _make(
    kind: str,
    fmt: OutputFormat,
    output: Path,
    month: str | None,
    now: datetime | None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> None:
    from spendgate.reports.produce import produce, write

    with cli_store() as store:
        try:
            report = produce(
                store, kind, month=month, since=since, until=until, formats=_formats(fmt), now=now
            )
        except ValueError as exc:
            fail(str(exc))
    for path in write(report.outputs, output):
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    report = typer.Typer(help="Finance reports.", no_args_is_help=True)
    report.command("chargeback")(chargeback)
    report.command("forecast")(forecast)
    report.command("cost-per-pr")(cost_per_pr)

    @report.command("finance")
    def finance(
        month: str | None = typer.Option(
            None, "--month", help="YYYY-MM (UTC); default: the last complete month."
        ),
        fmt: OutputFormat = FORMAT,
        output: Path = OUTPUT,
        now: str | None = NOW,
    ) -> None:
        """The finance report: spend trend, cost per merged PR by team with trend lines, budget
        versus actual, forecast, top use cases, routing savings. Prints the files written."""
        _make("finance", fmt, output, month, moment(now, "--now"))

    @report.command("governance")
    def governance(
        month: str | None = typer.Option(
            None, "--month", help="YYYY-MM (UTC); default: the last complete month."
        ),
        since: str | None = typer.Option(None, "--since", help="Start (ISO date, UTC) instead of a month."),
        until: str | None = typer.Option(None, "--until", help="End, exclusive (ISO date, UTC)."),
        fmt: OutputFormat = FORMAT,
        output: Path = OUTPUT,
        now: str | None = NOW,
    ) -> None:
        """The engineering view: spend by team, use case and model, top keys and users, anomalies and
        budget tiers crossed. Prints the files written."""
        if (since is None) != (until is None):
            fail("give both --since and --until, or neither")
        if since is not None and month is not None:
            fail("give --month or --since/--until, not both")
        _make(
            "governance",
            fmt,
            output,
            month,
            moment(now, "--now"),
            moment(since, "--since"),
            moment(until, "--until"),
        )

    @report.command("run-due")
    def run_due_cmd(
        file: Path | None = SCHEDULE_FILE,
        now: str | None = NOW,
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Produce the scheduled reports that are due and not produced yet for their period, once
        (what the gateway does every SPENDGATE_REPORTS_INTERVAL_S). For cron."""
        import dataclasses

        from spendgate.reports.schedule import run_due

        schedule = _schedule(file)
        with cli_store() as store:
            results = run_due(store, schedule, moment(now, "--now"))
        rows = [dataclasses.asdict(r) for r in results]
        if fmt is Format.json:
            print_json(rows)
        else:
            print_table(
                ["entry", "period", "files", "emailed", "error"],
                [
                    [r.entry, r.period, "\n".join(r.files), ", ".join(r.emailed), r.error or ""]
                    for r in results
                ],
                "Reports produced" if results else "No report due",
            )
        if any(r.error for r in results):
            raise typer.Exit(1)

    @report.command("schedule")
    def schedule_cmd(
        file: Path | None = SCHEDULE_FILE,
        now: str | None = NOW,
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Each scheduled report, the period it is due for now, and what has been produced."""
        import dataclasses

        from spendgate.reports.schedule import due_period, produced

        schedule = _schedule(file)
        at = moment(now, "--now") or datetime.now(UTC)
        with cli_store() as store:
            done = {(r.entry, r.period): r for r in produced(store)}
        rows: list[dict[str, Any]] = []
        for entry in schedule.entries:
            period = due_period(entry, at).key
            record = done.get((entry.name, period))
            rows.append(
                {
                    "entry": entry.name,
                    "report": entry.report,
                    "every": entry.every,
                    "due_period": period,
                    "status": record.status if record else "due",
                    "folder": None if entry.folder is None else str(entry.folder),
                    "email": list(entry.email),
                }
            )
        if fmt is Format.json:
            print_json({"entries": rows, "produced": [dataclasses.asdict(r) for r in done.values()]})
            return
        print_table(
            ["entry", "report", "every", "due_period", "status", "folder", "email"],
            [[*(r[c] for c in list(r)[:6]), ", ".join(r["email"])] for r in rows],
            "Scheduled reports",
        )

    app.add_typer(report, name="report")
    del finance, governance, run_due_cmd, schedule_cmd


def _schedule(file: Path | None) -> Schedule:
    from spendgate.reports.schedule import load_schedule

    path = file or settings().reports_file
    if path is None:
        fail("no schedule: pass --file or set SPENDGATE_REPORTS_FILE")
    try:
        return load_schedule(path)
    except (OSError, ValueError) as exc:
        fail(f"{path}: {exc}")
