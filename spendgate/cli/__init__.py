"""The `spendgate` command line, split by command group (one module each, which declares the group
and all its commands; `common.py` holds what they share).

Each module exposes ``register(app)``; nothing is built at import time, and a command imports what
it needs when it runs. The settings are read once per invocation (`common.settings()`).
"""

from __future__ import annotations

import typer

from spendgate.cli import (
    admin_cmds,
    alert_cmds,
    batch_cmds,
    budget_cmds,
    chargeback_cmd,
    console_cmds,
    demo_cmd,
    fake_cmd,
    finance_cmds,
    forecast_cmd,
    reconcile_cmds,
    report_cmds,
    roles_cmds,
    rollout_cmds,
    routing_cmds,
    serve_cmd,
    spend_cmd,
    usecase_cmds,
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="spendgate",
        help="Token-FinOps gateway: meter, attribute and govern every LLM call.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # Plain help and errors: rich's help formatter (rich, markdown-it, pygments) was about
        # half of `spendgate --help`'s start-up (bench/cli_startup.py).
        rich_markup_mode=None,
    )
    modules = (
        serve_cmd,
        admin_cmds,
        budget_cmds,
        spend_cmd,
        routing_cmds,
        alert_cmds,
        demo_cmd,
        fake_cmd,
        chargeback_cmd,
        forecast_cmd,
        report_cmds,
        finance_cmds,
        reconcile_cmds,
        roles_cmds,
        console_cmds,
        rollout_cmds,
        batch_cmds,
        usecase_cmds,
    )
    for module in modules:
        module.register(app)
    return app


def main() -> None:
    from spendgate.extras import MissingExtra

    try:
        build_app()()
    except MissingExtra as exc:  # a feature whose extra is not installed: one line, no trace
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
