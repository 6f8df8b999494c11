"""The `spendgate report` group, declared here with all its commands: `finance` and `governance`
(the two audiences' reports as HTML and PDF), `run-due` (the scheduled ones, once, for cron),
`schedule`, and `chargeback`, `forecast` and `cost-per-pr`, whose commands live in their own
modules (`chargeback` and `forecast` also answer at the top level)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from spendgate.cli import present as p
from spendgate.cli.chargeback_cmd import chargeback
from spendgate.cli.common import cli_store, fail, moment, settings
from spendgate.cli.finance_cmds import cost_per_pr
from spendgate.cli.forecast_cmd import forecast
from spendgate.cli.present import FORMAT_OPTION, Format, emit

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
    baseline: str | None = None,
) -> None:
    from spendgate.pricing import Pricer
    from spendgate.reports.produce import produce, write
    from spendgate.routing.baseline import Baseline

    formats = _formats(fmt)
    against = Baseline(baseline, Pricer(settings().price_overrides_file)) if baseline else None
    with cli_store() as store, p.progress(f"The {kind} report", 2 + len(formats)) as bar:
        try:
            report = produce(
                store,
                kind,
                month=month,
                since=since,
                until=until,
                formats=formats,
                now=now,
                on_step=bar.step,
                baseline=against,
            )
        except ValueError as exc:
            fail(str(exc))
    for path in write(report.outputs, output):
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    report = typer.Typer(help="Finance reports.", no_args_is_help=True)
    # One implementation each, at the top level; here as aliases with the same options.
    report.command("chargeback", help="Alias of `spendgate chargeback`: " + _help(chargeback))(chargeback)
    report.command("forecast", help="Alias of `spendgate forecast`: " + _help(forecast))(forecast)
    report.command("cost-per-pr")(cost_per_pr)

    @report.command("finance")
    def finance(
        month: str | None = typer.Option(
            None, "--month", help="YYYY-MM (UTC); default: the last complete month."
        ),
        fmt: OutputFormat = FORMAT,
        output: Path = OUTPUT,
        now: str | None = NOW,
        baseline: str = typer.Option(
            "claude-opus-4-6",
            "--baseline",
            help="The model the routing savings are also stated against, for every call.",
        ),
    ) -> None:
        """The finance report: spend trend, cost per merged PR by team with trend lines, budget
        versus actual, forecast, top use cases, routing savings (against the models asked for and
        against --baseline). Prints the files written."""
        _make("finance", fmt, output, month, moment(now, "--now"), baseline=baseline)

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
        columns = [p.text("entry"), p.text("period"), p.text("files", get=lambda r: "\n".join(r["files"]))]
        columns += [p.text("emailed"), p.text("error")]
        emit(rows, fmt, columns, "Reports produced" if results else "No report due")
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
        columns = [*(p.text(c) for c in ("entry", "report", "every")), p.text("due_period", "due period")]
        columns += [p.text(c) for c in ("status", "folder", "email")]
        document = {"entries": rows, "produced": [dataclasses.asdict(r) for r in done.values()]}
        emit(rows, fmt, columns, "Scheduled reports", document=document)

    app.add_typer(report, name="report")
    del finance, governance, run_due_cmd, schedule_cmd


def _help(command: Callable[..., None]) -> str:
    return (command.__doc__ or "").split("\n\n")[0]


def _schedule(file: Path | None) -> Schedule:
    from spendgate.reports.schedule import load_schedule

    path = file or settings().reports_file
    if path is None:
        fail("no schedule: pass --file or set SPENDGATE_REPORTS_FILE")
    try:
        return load_schedule(path)
    except (OSError, ValueError) as exc:
        fail(f"{path}: {exc}")
