"""`spendgate budgets ...` and `spendgate exemptions ...`: spend limits and their audited exceptions.

Like the other admin commands these open the database directly; a running gateway picks the
changes up within SPENDGATE_BUDGET_REFRESH_S. The operations live in `spendgate.admin.budget_service`
(shared with the HTTP admin API).
"""

from __future__ import annotations

from typing import Any

import typer

from spendgate.budgets.model import PERIODS, SCOPE_TYPES, TIERS_HELP
from spendgate.budgets.recommend import RECOMMENDED_TIERS, tiers_text
from spendgate.budgets.recommend import apply as apply_recommendations
from spendgate.cli import present as p
from spendgate.cli.common import REVOKED_OPTION, cli_store, fail
from spendgate.cli.present import FORMAT_OPTION, Format, emit, emit_one

SINCE_OPTION = typer.Option(None, "--since", help="From this ISO date/datetime (inclusive).")
UNTIL_OPTION = typer.Option(None, "--until", help="Up to this ISO date/datetime (exclusive).")
NOTE_OPTION = typer.Option(None, "--note", help="Why: kept in the audit trail.")
BY_OPTION = typer.Option(..., "--by", help="Who decides (must not be the requester).")

STATUS_COLUMNS = [
    p.text("id"),
    p.text("name"),
    p.text("scope"),
    p.token("mode"),
    p.token("period_key", "period"),
]
STATUS_COLUMNS += [p.money("spent_usd", "spent", 4), p.money("amount_usd", "budget", 2)]
STATUS_COLUMNS += [p.pct("percent_used", "used"), p.money("hard_limit_usd", "hard limit", 2)]
STATUS_COLUMNS += [p.token("tier_reached", "tier"), p.times("reset_at", "resets"), p.text("note")]
EXEMPTION_COLUMNS = [p.text("id"), p.text("budget"), p.money("extra_usd", "extra", 2), p.text("use_case")]
EXEMPTION_COLUMNS += [p.times("starts_at"), p.times("ends_at"), p.token("state"), p.text("reason")]
EXEMPTION_COLUMNS += [p.text("requested_by"), p.times("requested_at"), p.token("status")]
EXEMPTION_COLUMNS += [p.text("decided_by"), p.times("decided_at"), p.text("decision_note")]
RECOMMEND_COLUMNS = [p.token("group"), p.label("name", "name"), p.counts("days_with_data", "days with data")]
RECOMMEND_COLUMNS += [p.counts("days_observed", "days observed"), p.money("total_usd", "total", 2)]
RECOMMEND_COLUMNS += [p.money(f"{k}_usd", k.replace("_", " "), 2) for k in ("avg_day", "p95_day", "max_day")]
RECOMMEND_COLUMNS += [p.money(f"{k}_usd", k, 2) for k in ("baseline", "soft", "hard")]
RECOMMEND_COLUMNS += [p.text("budget_name", "budget")]


def _tiers(row: dict[str, Any]) -> dict[str, Any]:
    """The tiers as one readable cell, in the syntax --tiers takes."""
    if not isinstance(row.get("tiers"), list):
        return row
    text = ",".join(
        f"{t['name']}={t['percent']}" + (f":{t['action']}" if t["action"] else "") for t in row["tiers"]
    )
    return {**row, "tiers": text}


def _emit_one(row: dict[str, Any], fmt: Format) -> None:
    emit_one(row if fmt is Format.json else _tiers(row), fmt)


def _budgets() -> typer.Typer:
    group = typer.Typer(help="Budgets: spend limits per scope and period, with tiers.", no_args_is_help=True)

    @group.command("create")
    def create(
        name: str = typer.Option(..., "--name", help="A unique name, shown in rejections and headers."),
        scope: str = typer.Option(..., "--scope", help="What it limits: " + "|".join(SCOPE_TYPES) + "."),
        value: str = typer.Option(
            ..., "--value", help="Name or id (org/team/user/key), k=v (tag), session id or '*' (session)."
        ),
        amount: str = typer.Option(..., "--amount", help="The budget in USD, e.g. 500 or 12.50."),
        period: str = typer.Option("month", "--period", help="|".join(PERIODS) + "."),
        start: str | None = typer.Option(None, "--start", help="Fixed period start (ISO)."),
        end: str | None = typer.Option(None, "--end", help="Fixed period end (ISO, exclusive)."),
        timezone: str = typer.Option("UTC", "--timezone", help="Where periods start, e.g. Europe/Berlin."),
        tiers: str | None = typer.Option(None, "--tiers", help=TIERS_HELP + "."),
        observe: bool = typer.Option(False, "--observe", help="Record what it would block; block nothing."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Create a budget (default tiers alert=80,amber=110,hard=150: calls block at 150%)."""
        from spendgate.admin import budget_service  # the service loads the store's domains: only when run

        with cli_store() as store:
            budget = budget_service.create_budget(
                store,
                name=name,
                scope=scope,
                value=value,
                amount_usd=amount,
                period=period,
                timezone=timezone,
                start=start,
                end=end,
                tiers=tiers,
                observe=observe,
            )
            _emit_one(budget_service.budget_view(budget, budget_service.scope_names(store)), fmt)

    @group.command("list")
    def list_(include_revoked: bool = REVOKED_OPTION, fmt: Format = FORMAT_OPTION) -> None:
        """Budgets with this period's spend from the ledger, percent used and when they reset."""
        from spendgate.admin import budget_service  # the service loads the store's domains: only when run

        with cli_store() as store:
            rows = budget_service.budget_status(store, include_revoked)
        if fmt is Format.table:
            for row in rows:
                row["reset_at"] = row["reset_at"] or row["status"]  # ended, not started, revoked
        emit(rows, fmt, STATUS_COLUMNS)

    @group.command("revoke")
    def revoke(
        ref: str = typer.Argument(..., help="Budget name or id."), fmt: Format = FORMAT_OPTION
    ) -> None:
        """Revoke a budget: it stops applying (its history stays)."""
        from spendgate.admin import budget_service  # the service loads the store's domains: only when run

        with cli_store() as store:
            _emit_one(
                budget_service.budget_view(store.revoke_budget(ref), budget_service.scope_names(store)), fmt
            )

    @group.command("events")
    def events(since: str | None = SINCE_OPTION, fmt: Format = FORMAT_OPTION) -> None:
        """Tier crossings: the first time spend passed each tier in a period."""
        from spendgate.admin import budget_service  # the service loads the store's domains: only when run

        with cli_store() as store:
            rows = budget_service.budget_events(store, since)
        columns = [p.times("crossed_at", "crossed"), p.text("budget"), p.text("scope")]
        columns += [p.token("period_key", "period"), p.token("tier"), p.pct("percent", "tier at", 0)]
        columns += [p.money("threshold_usd", "threshold", 4), p.money("spend_usd", "spend", 4)]
        columns += [p.flag("observed"), p.text("request_id")]
        emit(rows, fmt, columns)

    @group.command("would-block")
    def would_block(
        since: str | None = SINCE_OPTION, until: str | None = UNTIL_OPTION, fmt: Format = FORMAT_OPTION
    ) -> None:
        """Observation mode report: calls let through that a budget would have blocked."""
        from spendgate.admin import budget_service  # the service loads the store's domains: only when run

        with cli_store() as store:
            rows = budget_service.would_block_report(store, since, until)
        columns = [p.text("would_block", "would block"), p.text("scope"), p.token("mode")]
        columns += [
            p.counts("requests"),
            p.money("cost_usd", "cost"),
            p.times("first_at"),
            p.times("last_at"),
        ]
        emit(rows, fmt, columns, "Calls budgets would have blocked")

    @group.command("recommend")
    def recommend(
        days: int = typer.Option(60, "--days", help="History to learn from: the last N whole UTC days."),
        by: list[str] = typer.Option(["team"], "--by", help="team and/or use_case (repeatable)."),
        min_usd: str = typer.Option("1", "--min-usd", help="Skip groups with a smaller monthly baseline."),
        do_apply: bool = typer.Option(False, "--apply", help="Create the budgets (named rec-<name>)."),
        enforce: bool = typer.Option(False, "--enforce", help="With --apply: enforce, not observe."),
        force: bool = typer.Option(
            False, "--force", help="With --apply: even for teams under 60 days of history."
        ),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Propose monthly budgets from the ledger: baseline = average day x 30.4, soft 140%, hard 200%."""
        from datetime import UTC, datetime

        from spendgate.admin import budget_service  # the service loads the store's domains: only when run
        from spendgate.rollout import short_history, short_history_warning


        with cli_store() as store:
            recs = budget_service.recommend_budgets(store, days=days, by=by, min_usd=min_usd)
            short = short_history(store, recs, datetime.now(UTC))
            if short and do_apply and not force:
                fail(short_history_warning(short).removeprefix("warning: ") + "; --apply needs --force")
            if short:
                typer.echo(short_history_warning(short), err=True)
            rows = (
                apply_recommendations(store, recs, enforce=enforce) if do_apply else [r.view() for r in recs]
            )
        columns = [*RECOMMEND_COLUMNS, p.text("action")] if do_apply else RECOMMEND_COLUMNS
        notes = [
            "baseline = total / days observed (first day with spend .. yesterday) x 30.4, to the cent; "
            f"tiers {tiers_text(RECOMMENDED_TIERS)} (soft = amber, hard blocks); p95 = nearest rank."
        ]
        if rows and not do_apply:
            notes.append("Add --apply to create these budgets in observe mode (--enforce to enforce).")
        emit(rows, fmt, columns, f"Recommended monthly budgets from the last {days} days", notes=notes)

    return group


def _exemptions() -> typer.Typer:
    group = typer.Typer(
        help="Exemptions: extra budget headroom for a while, approved by someone else.", no_args_is_help=True
    )

    @group.command("request")
    def request(
        budget: str = typer.Option(..., "--budget", help="Budget name or id."),
        amount: str | None = typer.Option(None, "--amount", help="Extra headroom in USD."),
        percent: int | None = typer.Option(None, "--percent", help="...or as a percentage of the budget."),
        hours: float | None = typer.Option(None, "--hours", help="For this many hours from now."),
        start: str | None = typer.Option(None, "--start", help="...or from (ISO; budget's time zone)."),
        end: str | None = typer.Option(None, "--end", help="...until (ISO, exclusive)."),
        use_case: str | None = typer.Option(None, "--use-case", help="Only calls with this use case."),
        reason: str = typer.Option(..., "--reason", help="Why it is needed (kept in the audit trail)."),
        requested_by: str = typer.Option(..., "--requested-by", help="Who is asking."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Ask for an exemption; it applies once someone other than the requester approves it."""
        from spendgate.admin import budget_service  # the service loads the store's domains: only when run

        with cli_store() as store:
            exemption = budget_service.request_exemption(
                store,
                budget=budget,
                amount_usd=amount,
                percent=percent,
                hours=hours,
                start=start,
                end=end,
                use_case=use_case,
                reason=reason,
                requested_by=requested_by,
            )
            _emit_one(budget_service.exemption_view(exemption, store.get_budget(exemption.budget_id)), fmt)

    def decide(ref: str, approve: bool, by: str, note: str | None, fmt: Format) -> None:
        from spendgate.admin import budget_service  # the service loads the store's domains: only when run

        with cli_store() as store:
            exemption = budget_service.decide_exemption(store, ref, approve=approve, by=by, note=note)
            _emit_one(budget_service.exemption_view(exemption, store.get_budget(exemption.budget_id)), fmt)

    @group.command("approve")
    def approve(
        ref: str = typer.Argument(..., help="Exemption id."),
        by: str = BY_OPTION,
        note: str | None = NOTE_OPTION,
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Approve a pending exemption (not your own)."""
        decide(ref, True, by, note, fmt)

    @group.command("deny")
    def deny(
        ref: str = typer.Argument(..., help="Exemption id."),
        by: str = BY_OPTION,
        note: str | None = NOTE_OPTION,
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Deny a pending exemption (not your own)."""
        decide(ref, False, by, note, fmt)

    @group.command("list")
    def list_(
        status: str | None = typer.Option(None, "--status", help="pending|approved|denied."),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """The audit trail: who asked for what, when and why; who decided; active now or expired."""
        from spendgate.admin import budget_service  # the service loads the store's domains: only when run

        with cli_store() as store:
            rows = budget_service.list_exemptions(store, status)
        emit(rows, fmt, EXEMPTION_COLUMNS)

    return group


def register(app: typer.Typer) -> None:
    app.add_typer(_budgets(), name="budgets")
    app.add_typer(_exemptions(), name="exemptions")
