"""`spendgate alerts ...` (check, list, deliveries, detail) and `spendgate anomalies backtest`.

`alerts check` runs one pass of the loop the gateway runs (useful from cron and in tests) and waits
for its deliveries; the other commands read the alerts tables and the ledger.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import typer

from spendgate.cli import present as p
from spendgate.cli.common import cli_store, fail, moment, settings
from spendgate.cli.present import FORMAT_OPTION, VIEW_FORMAT_OPTION, Format, ViewFormat, emit, print_json
from spendgate.dimensions import ALERT_BY

if TYPE_CHECKING:  # the alert loop and its HTTP client load when a command runs
    from spendgate.alerts.config import AlertsConfig
    from spendgate.alerts.scheduler import AlertSource, PassResult
    from spendgate.config import Settings
    from spendgate.store.principals import NameStore

NOW_OPTION = typer.Option(None, "--now", help="Pretend it is this ISO time (UTC unless it has an offset).")


def _moment(text: str | None) -> datetime:
    return moment(text) or datetime.now(UTC)


def _config() -> AlertsConfig:
    from spendgate.alerts.config import load_alerts_config

    try:
        return load_alerts_config(settings().alerts_file)
    except (OSError, ValueError) as exc:
        fail(f"alerts file: {exc}")


def _resolve_value(store: NameStore, by: str, ref: str) -> str:
    """A team/key/user name or id -> the id the ledger holds (other groups are used as given)."""
    from spendgate.alerts.anomalies import Names

    names = Names.load(store).names.get(by, {})
    if ref in names:
        return ref
    matches = [id_ for id_, name in names.items() if name == ref]
    if len(matches) > 1:
        fail(f"{len(matches)} {by}s are named {ref!r}; use the id")
    return matches[0] if matches else ref


async def _check(store: AlertSource, settings: Settings, config: AlertsConfig, now: datetime) -> PassResult:
    from spendgate.alerts.scheduler import check_once, deliverer_for

    async with deliverer_for(store, settings) as deliverer:
        result = await check_once(store, config, deliverer, now)
        await deliverer.drain()
    return result


CHECK_COLUMNS = [
    p.text("id"),
    p.token("action"),
    p.token("kind"),
    p.text("group"),
    p.token("day"),
    p.counts("delivered"),
    p.text("summary"),
]
LIST_COLUMNS = [
    p.text("id"),
    *(p.token(c) for c in ("kind", "group_by")),
    p.text("group_value"),
    *(p.token(c) for c in ("day", "status")),
    p.times("opened_at", "opened"),
    p.times("resolved_at", "resolved"),
    p.text("summary"),
]
DELIVERY_COLUMNS = [p.times("at"), *(p.text(c) for c in ("alert_id", "channel", "action"))]
DELIVERY_COLUMNS += [p.counts("attempt"), p.text("status"), p.text("http_status", "http"), p.text("error")]


def _alerts() -> typer.Typer:
    group = typer.Typer(help="Spend anomaly, budget and forecast alerts.", no_args_is_help=True)

    @group.command("check")
    def check(now: str | None = NOW_OPTION, fmt: Format = FORMAT_OPTION) -> None:
        """Run one alert pass now (as the gateway does every SPENDGATE_ALERTS_INTERVAL_S) and deliver."""
        import asyncio

        config = _config()
        with cli_store() as store:
            result = asyncio.run(_check(store, settings(), config, _moment(now)))
            ids = set(result.triggered) | set(result.resolved)
            rows = [r for r in store.list_alerts() if r.id in ids]
            delivered = store.list_alert_deliveries()
        view = [
            {
                "id": r.id,
                "action": "resolved" if r.id in result.resolved else "opened",
                "kind": r.kind,
                "group": f"{r.group_by}:{r.details.get('name', r.group_value)}",
                "day": r.day,
                "summary": r.summary if r.id in result.triggered else r.resolve_note,
                "delivered": sum(1 for d in delivered if d.alert_id == r.id and d.status == "delivered"),
            }
            for r in rows
        ]
        notes = (
            []
            if config.channels
            else ["no channels configured (SPENDGATE_ALERTS_FILE): alerts recorded, none sent"]
        )
        emit(view, fmt, CHECK_COLUMNS, notes=notes)

    @group.command("list")
    def list_(
        status: str | None = typer.Option(None, "--status", help="open|resolved."),
        kind: str | None = typer.Option(None, "--kind", help="anomaly|budget|forecast."),
        since: str | None = typer.Option(None, "--since", help="Opened at or after this ISO date/time."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Alerts, oldest first, with their state."""
        with cli_store() as store:
            rows = [asdict(r) for r in store.list_alerts(status=status, kind=kind, since=since)]
        emit(rows, fmt, LIST_COLUMNS)

    @group.command("deliveries")
    def deliveries(
        alert: str | None = typer.Option(None, "--alert", help="Only this alert id."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Every delivery attempt: channel, action, attempt, delivered or failed (and why)."""
        with cli_store() as store:
            rows = [asdict(r) for r in store.list_alert_deliveries(alert)]
        emit(rows, fmt, DELIVERY_COLUMNS)

    @group.command("detail")
    def detail(
        value: str = typer.Option(..., "--value", help="The group: a team (name or id), use case, key, ..."),
        by: str = typer.Option("team", "--by", help="|".join(ALERT_BY) + "."),
        day: str | None = typer.Option(
            None, "--day", help="Local date (default: today); shows the whole day."
        ),
        now: str | None = NOW_OPTION,
        fmt: ViewFormat = VIEW_FORMAT_OPTION,
    ) -> None:
        """Why a group alerted: today vs its baseline, and the top contributors (key, user, use case,
        model, session), each against its own baseline."""
        from dataclasses import replace

        from spendgate.alerts.anomalies import Names, contributor_line, explain, usd

        params = replace(_config().detect, by=by)
        if by not in ALERT_BY:
            fail(f"--by must be one of {', '.join(ALERT_BY)}")
        moment = _moment(now)
        today = moment.astimezone(params.zone).date()
        if day is not None:
            today = date.fromisoformat(day)
            end_of_day = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=params.zone)
            moment = min(moment, end_of_day)
        with cli_store() as store:
            group_id = _resolve_value(store, by, value)
            found, causes = explain(store, params, group_id, today, moment, Names.load(store))
        view: dict[str, Any] = {
            "group": f"{by}:{value}",
            "day": today.isoformat(),
            "spend_usd": round(found.today_nanos / 1e9, 2),
            "baseline_usd_per_day": round(found.baseline.effective(params) / 1e9, 2),
            "ratio": None if found.ratio is None else round(found.ratio, 2),
            "threshold": params.threshold,
            "would_fire": found.fire,
            "note": found.note,
            "contributors": {
                dim: [contributor_line(c) for c in found_list] for dim, found_list in causes.items()
            },
        }
        if fmt is ViewFormat.json:
            print_json(view)
            return
        ratio = "n/a (no history)" if found.ratio is None else f"{found.ratio:.2f}x"
        typer.echo(
            f"{by} {value} on {today}: {usd(found.today_nanos)} vs baseline "
            f"{usd(found.baseline.effective(params))}/day = {ratio} (threshold {params.threshold:g}x)"
        )
        if found.note:
            typer.echo(found.note)
        rows = [
            {"dimension": dim, "line": line}
            for dim, found_list in causes.items()
            for line in (contributor_line(c) for c in found_list)
        ]
        p.print_table(
            rows, [p.text("dimension"), p.text("line", "increase over its own baseline")], "Top contributors"
        )

    return group


def _anomalies() -> typer.Typer:
    group = typer.Typer(help="Anomaly detector tools.", no_args_is_help=True)

    @group.command("backtest")
    def backtest_(
        thresholds: str = typer.Option("2,3", "--thresholds", help="Comma-separated ratios, e.g. 2,3,4."),
        since: str = typer.Option(..., "--since", help="First local date replayed."),
        until: str | None = typer.Option(None, "--until", help="Replay up to this date (default: today)."),
        by: str = typer.Option("team", "--by", help="|".join(ALERT_BY) + "."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Replay the daily check over history: alerts each threshold would have fired, per group and
        month."""
        from dataclasses import replace

        from spendgate.alerts.anomalies import Names
        from spendgate.alerts.backtest import backtest

        if by not in ALERT_BY:
            fail(f"--by must be one of {', '.join(ALERT_BY)}")
        params = replace(_config().detect, by=by)
        try:
            levels = [float(t) for t in thresholds.split(",") if t.strip()]
        except ValueError:
            fail("--thresholds takes numbers, e.g. 2,3")
        start = date.fromisoformat(since)
        end = date.fromisoformat(until) if until else datetime.now(params.zone).date()
        with cli_store() as store:
            names = Names.load(store).names.get(by, {})
            rows = backtest(store, params, levels, start, end, names)
        columns = [p.label("name", by), p.token("month")]
        columns += [p.counts(f"alerts_at_{t:g}x", f"alerts at {t:g}x") for t in levels]
        title = f"Daily check at {params.check_time:%H:%M} {params.timezone}, {start} to {end} (exclusive)"
        emit(rows, fmt, columns, title)

    return group


def register(app: typer.Typer) -> None:
    app.add_typer(_alerts(), name="alerts")
    app.add_typer(_anomalies(), name="anomalies")
