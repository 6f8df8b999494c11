"""`spendgate rollout status`: per team, days of history against the 60 days of observation the brief
asks for, coverage from reconciliation, and the recommended budget (see `spendgate.rollout`)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from spendgate.cli import present as p
from spendgate.cli.common import cli_store, settings
from spendgate.cli.present import FORMAT_OPTION, Format, emit

RECOMMENDED = ("baseline_usd", "soft_usd", "hard_usd")
COLUMNS = [
    p.text("team"),
    p.counts("days_of_history", "days"),
    p.text("stage"),
    p.text("budgets_now", "budgets now"),
    p.money("baseline_usd", "baseline", 2),
    p.money("soft_usd", "soft", 2),
    p.money("hard_usd", "hard", 2),
]


def _rollout() -> typer.Typer:
    group = typer.Typer(
        help="Rollout: observe 60 days, then set budgets from the baseline.", no_args_is_help=True
    )

    @group.command("status")
    def status_cmd(fmt: Format = FORMAT_OPTION) -> None:
        """Per team: days of history, stage, budgets now and recommended; coverage of the provider's bill."""
        from spendgate.rollout import status

        with cli_store() as store:
            data = status(store, datetime.now(UTC), settings().gateway_provider_key_ids)
        # One line per team: its budgets in a cell, the recommendation's figures as columns.
        rows = [
            {
                **{k: v for k, v in t.items() if k not in ("budgets", "recommended")},
                "budgets_now": "; ".join(
                    f"{b['name']} ({b['mode']}, {p.usd(b['amount_usd'], 2)})" for b in t["budgets"]
                )
                or "none",
                **{k: (t["recommended"] or {}).get(k) for k in RECOMMENDED},
            }
            for t in data["teams"]
        ]
        title = f"Rollout: {data['min_history_days']} days of observation before budgets"
        emit(rows, fmt, COLUMNS, title, document=data)
        if fmt is not Format.table:
            return
        coverage = data["coverage"]
        if coverage["imported"]:
            for line in coverage["by_provider"]:
                typer.echo(
                    f"coverage {line['provider']}: {p.percent(line['coverage_pct'])} of billed "
                    f"({coverage['since']}..)"
                )
        else:
            typer.echo(
                "coverage: import provider usage (spendgate reconcile import) "
                "to see what share the gateway sees"
            )
        if coverage["bypass_keys"]:
            typer.echo(f"provider keys bypassing the gateway: {', '.join(coverage['bypass_keys'])}")

    return group


def register(app: typer.Typer) -> None:
    app.add_typer(_rollout(), name="rollout")
