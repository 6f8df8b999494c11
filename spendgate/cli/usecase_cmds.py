"""`spendgate use-cases rules`: the use-case inference rules in force (and a check of a file);
`explain` prints `spendgate ledger explain-use-case` (declared in spend_cmd.py's ledger group)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from spendgate.cli.common import RULES_OPTION, cli_store, fail, settings
from spendgate.cli.present import VIEW_FORMAT_OPTION, ViewFormat, print_json

if TYPE_CHECKING:
    from spendgate.inference.infer import Inferrer
    from spendgate.inference.rules import UseCaseRules


def load_use_case_rules(path: Path | None) -> UseCaseRules:
    from spendgate.inference.rules import RulesError, load_rules

    try:
        return load_rules(path or settings().use_case_rules_file)
    except RulesError as exc:
        fail(str(exc))


def load_inferrer(path: Path | None) -> Inferrer:
    from spendgate.inference.infer import Inferrer

    return Inferrer(load_use_case_rules(path))


def rules_view(rules: UseCaseRules) -> dict[str, Any]:
    return {
        "source": rules.source,
        "clients": [{"name": c.name, "why": c.why, "headers": c.described} for c in rules.clients],
        "rules": [
            {
                "name": r.name,
                "use_case": r.use_case,
                "source": r.source,
                "enabled": r.enabled,
                "why": r.why,
                "match": {c.key: c.wanted for c in r.conditions},
            }
            for r in rules.rules
        ],
    }


def explain(request_id: str, rules_path: Path | None, fmt: ViewFormat) -> None:
    from spendgate.inference.explanation import explain_row

    rules = load_use_case_rules(rules_path)
    with cli_store() as store:
        row = store.ledger_row(request_id)
    if row is None:
        fail(f"no ledger row with request id {request_id!r}")
    result = explain_row(row, rules)
    if fmt is ViewFormat.json:
        print_json(result)
        return
    line = "{:<12} {}".format
    typer.echo(line("request", f"{result['request_id']} at {result['started_at']}"))
    typer.echo(line("use case", f"{result['use_case']} ({result['kind']})"))
    typer.echo(line("source", result["use_case_source"] or "-"))
    typer.echo(line("why", result["reason"]))
    rule = result["rule"]
    if rule is not None and rule["in_current_rules"]:
        state = "" if rule["enabled"] else " (disabled now)"
        typer.echo(line("rule", f"{rule['name']}{state} in {rule['source']}: {rule['why']}"))
        typer.echo(line("conditions", "; ".join(rule["conditions"]) or "none: matches every call"))
    elif rule is not None:
        typer.echo(line("rule", f"{rule['name']} is no longer in {rule['source']}"))
    if result["evidence"]:
        typer.echo(line("evidence", result["evidence"]))
    recorded = result["recorded"]
    typer.echo(
        line(
            "recorded",
            f"{recorded['provider']} {recorded['endpoint']} {recorded['requested_model'] or '-'}"
            f"{' streamed' if recorded['streamed'] else ''}; user agent {recorded['user_agent'] or '-'}; "
            f"session {recorded['session_id'] or '-'}; agent {recorded['agent_id'] or '-'}",
        )
    )


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Use-case inference for calls that declare no use case.", no_args_is_help=True)

    @group.command("rules")
    def rules(rules: Path | None = RULES_OPTION, fmt: ViewFormat = VIEW_FORMAT_OPTION) -> None:
        """Print the use-case rules in force (clients, then rules in order); validates a file."""
        view = rules_view(load_use_case_rules(rules))
        if fmt is ViewFormat.json:
            print_json(view)
            return
        typer.echo(f"rules: {view['source']}")
        typer.echo("clients (first match wins)")
        for client in view["clients"]:
            typer.echo(f"  {client['name']}: any of {client['headers']}")
            if client["why"]:
                typer.echo(f"     why: {client['why']}")
        typer.echo("rules (first match names the use case; none: untagged)")
        for n, rule in enumerate(view["rules"], 1):
            state = "" if rule["enabled"] else " (disabled)"
            typer.echo(f"  {n}. {rule['name']}{state} -> {rule['use_case']}")
            match = "; ".join(f"{k} = {v}" for k, v in rule["match"].items()) or "every call"
            typer.echo(f"     match {match}")
            if rule["why"]:
                typer.echo(f"     why: {rule['why']}")

    app.add_typer(group, name="use-cases")
