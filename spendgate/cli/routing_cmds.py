"""`spendgate route explain|policy` and `spendgate savings`: see routing decisions and what they saved.

`route explain` routes a request body exactly as the gateway would, without calling a provider;
`savings` reads the ledger. The operations live in `spendgate.admin.routing_service`.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from spendgate.cli import present as p
from spendgate.cli.common import RULES_OPTION, cli_store, fail, settings
from spendgate.cli.present import FORMAT_OPTION, VIEW_FORMAT_OPTION, Format, ViewFormat, emit, print_json
from spendgate.cli.usecase_cmds import load_inferrer
from spendgate.dimensions import SAVINGS_BY

if TYPE_CHECKING:
    from spendgate.admin.routing_service import LoadedPolicy

POLICY_OPTION = typer.Option(
    None, "--policy", help="A policy TOML file; default: SPENDGATE_ROUTING_POLICY_FILE, else the built-in."
)


class ProviderName(StrEnum):
    anthropic = "anthropic"
    openai = "openai"


def _load(path: Path | None) -> LoadedPolicy:
    from spendgate.admin import routing_service
    from spendgate.routing.policy import PolicyError

    try:
        return routing_service.load(path or settings().routing_policy_file)
    except PolicyError as exc:
        fail(str(exc))


def _read_body(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror}")


def _line(label: str, value: Any) -> None:
    typer.echo(f"{label:<12} {value}")


def _price(view: dict[str, str] | None) -> str:
    if view is None:
        return "no price known"
    return f"${view['input_usd_per_mtok']} in / ${view['output_usd_per_mtok']} out per MTok"


def _outcome(result: dict[str, Any]) -> str:
    if result["outcome"] == "refused":
        return f"REFUSED ({result['status']}): {result['reason']}"
    return f"{result['outcome']}: {result['reason']}"


def print_explanation(result: dict[str, Any]) -> None:
    key = result["key"]
    tags = ",".join(f"{k}={v}" for k, v in sorted(result["tags"].items())) or "-"
    _line("policy", result["policy"])
    _line("key", f"{key['name']} (team {key['team'] or '-'}), provider {result['provider']}")
    _line(
        "use case",
        f"{result['use_case']} ({result['use_case_source']})  tags: {tags}  "
        f"session: {result['session_id'] or '-'}",
    )
    if result["use_case_evidence"]:
        _line("inferred", result["use_case_evidence"])
    _line("requested", f"{result['requested_model']}  {_price(result['prices']['requested'])}")
    if result["routed_model"] is not None:
        _line("routed", f"{result['routed_model']}  {_price(result['prices']['routed'])}")
    _line("outcome", _outcome(result))
    if result["sticky"]:
        _line("sticky", f"yes: later calls of session {result['session_id']} keep this model")
    typer.echo("rules")
    for line in result["trace"] or ["(the policy has no rules)"]:
        typer.echo(f"  {line}")
    score, points = result["complexity"], result["complexity"]["points"]
    _line(
        "complexity",
        f"{score['score']} = input ~{score['input_tokens']} tokens +{points['input_tokens']}, "
        f"tools {'yes' if score['tools'] else 'no'} +{points['tools']}, "
        f"thinking {'yes' if score['thinking'] else 'no'} +{points['thinking']}, "
        f"messages {score['messages']} +{points['messages']}",
    )
    allow = [
        f"{a['scope']} {a['name']} ({', '.join(a['models'])}): {a['outcome']}" for a in result["allowlists"]
    ]
    _line("allowlists", "; ".join(allow) or "none apply")
    chain = result["fallbacks"]
    if chain is None:
        return
    where = f", then deployments {', '.join(chain['deployments'])}" if chain["deployments"] else ""
    _line(
        "fallbacks",
        f"{' -> '.join(chain['models'])}{where}; retries {chain['retries']}, "
        f"backoff {chain['backoff_ms']} ms, on {', '.join(str(s) for s in chain['on_status'])}",
    )


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def print_policy(view: dict[str, Any]) -> None:
    typer.echo(f"policy: {view['source']}")
    typer.echo("tiers")
    for provider, tiers in view["tiers"].items():
        typer.echo(f"  {provider}: " + ", ".join(f"{t}={m}" for t, m in tiers.items()))
    typer.echo("rules (first match wins; no match: the requested model)")
    for n, rule in enumerate(view["rules"], 1):
        models = ", ".join(f"{p}: {m}" for p, m in rule["models"].items())
        state = "" if rule["enabled"] else " [disabled]"
        typer.echo(f"  {n}. {rule['name']}{state}: {rule['action']}" + (f" ({models})" if models else ""))
        match = ", ".join(f"{k}={_plain(v)}" for k, v in rule["match"].items()) or "every request"
        notes = "" if rule["sticky"] else "; not sticky"
        notes += "; inferred use cases too" if rule["use_inferred"] else ""
        typer.echo(f"     match {match}{notes}")
        if rule["why"]:
            typer.echo(f"     why: {rule['why']}")
    typer.echo("allowlists")
    listed = [(s, n, a) for s, lists in view["allow"].items() for n, a in lists.items()]
    for scope, name, allow in listed:
        typer.echo(f"  {scope[:-1]} {name}: {', '.join(allow['models'])} (else {allow['on_violation']})")
    if not listed:
        typer.echo("  (none)")
    fallbacks = view["fallbacks"]
    typer.echo(
        f"fallbacks: retries {fallbacks['retries']}, backoff {fallbacks['backoff_ms']} ms, "
        f"on {', '.join(str(s) for s in fallbacks['on_status'])}"
    )
    for model, chain in fallbacks["models"].items():
        typer.echo(f"  {model} -> {' -> '.join(chain)}")
    for provider, urls in fallbacks["deployments"].items():
        typer.echo(f"  {provider} deployments: {', '.join(urls)}")


def savings_columns(by: str) -> list[str]:
    from spendgate.admin import routing_service

    return [by, *routing_service.SAVINGS_COLUMNS, "savings_pct", "baseline"]


def savings_table_columns(by: str, baseline: str = "requested") -> list[p.Col]:
    return [
        p.label(by),
        p.counts("requests"),
        p.counts("routed_requests", "routed"),
        p.money("cost_usd", "cost"),
        p.money("counterfactual_usd", "as asked" if baseline == "requested" else f"on {baseline}"),
        p.money("savings_usd", "saved"),
        p.pct("savings_pct", "saved %"),
    ]


def register(app: typer.Typer) -> None:
    route = typer.Typer(help="Model routing: explain a decision, show the policy.", no_args_is_help=True)

    @route.command("explain")
    def explain(
        source: str = typer.Argument("-", help="The request body (JSON file), or - for stdin."),
        key: str = typer.Option(..., "--key", help="The caller's key: its secret, id, name or prefix."),
        provider: ProviderName = typer.Option(ProviderName.anthropic, "--provider", help="Which API."),
        header: list[str] = typer.Option([], "--header", help="A request header, 'Name: value'; repeatable."),
        policy: Path | None = POLICY_OPTION,
        rules: Path | None = RULES_OPTION,
        fmt: ViewFormat = VIEW_FORMAT_OPTION,
    ) -> None:
        """Route a request body as the gateway would (no provider is called) and show why."""
        from spendgate.admin import routing_service
        from spendgate.pricing import Pricer

        loaded = _load(policy)
        inferrer = load_inferrer(rules)
        body = _read_body(source)
        with cli_store() as store:
            principal = routing_service.resolve_principal(store, key)
            result = routing_service.explain(
                loaded,
                principal,
                routing_service.provider_for(provider.value),
                routing_service.parse_headers(header),
                body,
                Pricer(settings().price_overrides_file),
                inferrer,
            )
        if fmt is ViewFormat.json:
            print_json(result)
        else:
            print_explanation(result)

    @route.command("policy")
    def show_policy(
        policy: Path | None = POLICY_OPTION,
        fmt: ViewFormat = VIEW_FORMAT_OPTION,
    ) -> None:
        """Print the policy in force (tiers, rules in order, allowlists, fallbacks); validates a file."""
        from spendgate.admin import routing_service

        view = routing_service.policy_view(_load(policy))
        if fmt is ViewFormat.json:
            print_json(view)
        else:
            print_policy(view)

    app.add_typer(route, name="route")

    @app.command()
    def savings(
        by: str = typer.Option("team", "--by", help="Group by: " + "|".join(SAVINGS_BY) + "."),
        since: str | None = typer.Option(None, "--since", help="From this ISO date/datetime (inclusive)."),
        until: str | None = typer.Option(None, "--until", help="Up to this ISO date/datetime (exclusive)."),
        baseline: str = typer.Option(
            "requested",
            "--baseline",
            help="Compare with: 'requested' (the models the calls asked for) or one MODEL for every "
            "call, e.g. claude-opus-4-6 (priced per call from its tokens, at that day's price).",
        ),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """What routing saved: actual cost against the cost on the models asked for (or on one
        baseline model), exact USD."""
        from spendgate.admin import routing_service
        from spendgate.pricing import Pricer

        with cli_store() as store:
            rows = routing_service.savings_report(
                store, by, since, until, baseline, Pricer(settings().price_overrides_file)
            )
        against = "the models asked for" if baseline == "requested" else baseline
        title = f"Savings by {by} against {against} ({since or 'start'} .. {until or 'now'})"
        total = {by: "total", **routing_service.savings_total(rows)}
        columns = savings_table_columns(by, baseline)
        emit(rows, fmt, columns, title, totals=[total], fields=savings_columns(by))
