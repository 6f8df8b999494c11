"""`spendgate rollout status`: per team, days of history against the 60 days of observation the brief
asks for, coverage from reconciliation, and the recommended budget (see `spendgate.rollout`)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from spendgate.cli.common import FORMAT_OPTION, Format, cli_store, print_json, print_table, settings


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
        if fmt is Format.json:
            print_json(data)
            return
        rows = [
            [
                t["team"],
                t["days_of_history"],
                t["stage"],
                ", ".join(f"{b['name']} ({b['mode']}, {b['amount_usd']})" for b in t["budgets"]) or "none",
                (t["recommended"] or {}).get("baseline_usd", ""),
                (t["recommended"] or {}).get("soft_usd", ""),
                (t["recommended"] or {}).get("hard_usd", ""),
            ]
            for t in data["teams"]
        ]
        columns = ["team", "days", "stage", "budgets now", "baseline_usd", "soft_usd", "hard_usd"]
        print_table(columns, rows, f"Rollout: {data['min_history_days']} days of observation before budgets")
        coverage = data["coverage"]
        if coverage["imported"]:
            for line in coverage["by_provider"]:
                typer.echo(
                    f"coverage {line['provider']}: {line['coverage_pct']}% of billed ({coverage['since']}..)"
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
