"""`spendgate demo`: the gateway on SQLite against the bundled fake provider, with a workload."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Protocol

import typer

from spendgate.cli.common import settings
from spendgate.extras import require

if TYPE_CHECKING:  # rich and pydantic load when the demo runs, not with every CLI command
    from rich.console import Console

    from spendgate.config import Settings
    from spendgate.roles import PeopleReader
    from spendgate.store.budgets import BudgetStore
    from spendgate.store.spend import SpendStore

    class DemoPeople(PeopleReader, BudgetStore, Protocol):
        """What the demo's sign-in links need: people and roles, and a budget to ask an exemption of."""


DEMO_PROVIDER_KEY = "sk-ant-demo-provider-key"


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        port: int = typer.Option(8787, "--port", help="Port for the gateway."),
        calls: int = typer.Option(150, "--calls", help="How many calls the workload makes."),
        wait: bool = typer.Option(True, "--wait/--no-wait", help="Keep the gateway running afterwards."),
    ) -> None:
        """Run the gateway against a fake provider, drive a mixed workload, show who spent what."""
        run_demo(settings(), port, calls, wait)


def run_demo(base: Settings, port: int, calls: int, wait: bool) -> None:
    require("demo", "spendgate demo")
    from pydantic import SecretStr
    from rich.console import Console

    from spendgate.app import create_app
    from spendgate.cli.present import progress
    from spendgate.demo import plan, run_call, seed
    from spendgate.fake_upstream import FakeSettings, FakeUpstream
    from spendgate.servethread import ServerThread

    console = Console()
    if not console.is_terminal:  # piped: keep the tables readable rather than 80 columns wide
        console = Console(width=130)
    fake = FakeUpstream(
        FakeSettings(
            anthropic_api_key=DEMO_PROVIDER_KEY,
            openai_api_key=DEMO_PROVIDER_KEY,
            latency_ms=30,
            chunk_delay_ms=2,
        )
    ).start()
    settings = base.model_copy(
        update={
            "anthropic_base_url": fake.url,
            "openai_base_url": fake.openai_url,
            "anthropic_api_key": SecretStr(DEMO_PROVIDER_KEY),
            "openai_api_key": SecretStr(DEMO_PROVIDER_KEY),
        }
    )
    app = create_app(settings)
    gw = app.state.gateway
    keys = seed(gw.store)
    gw.keyring.reload()
    try:
        server = ServerThread(app, port=port, settings=settings).start()
    except OSError as exc:
        console.print(f"[red]Port {port} is busy ({exc.strerror}); try: spendgate demo --port 8788[/red]")
        fake.stop()
        raise typer.Exit(1) from None
    console.print(
        f"Gateway on [bold]{server.url}[/bold], ledger in [bold]{settings.database_url}[/bold], "
        f"provider: bundled fake at {fake.url}"
    )
    work = plan(keys, calls)
    failures = 0
    with (
        progress(f"Workload through the gateway ({len(work)} calls)", len(work)) as bar,
        ThreadPoolExecutor(max_workers=6) as pool,
    ):
        futures = [
            pool.submit(run_call, server.url, key, use_case, random.Random(i), session)
            for i, (key, use_case, session) in enumerate(work)
        ]
        for future in as_completed(futures):
            if future.exception() is not None:
                failures += 1
            bar.advance()
    console.print(f"Workload: {len(work)} calls through the gateway, with the official SDKs")
    gw.ledger.wait_idle(30)
    _print_report(console, gw.store)
    if failures:
        console.print(f"[yellow]{failures} calls failed; see the ledger's status column.[/yellow]")
    demo_key = keys[0].secret
    console.print(f"\n[bold]Try it yourself[/bold] (key for {keys[0].user} on team {keys[0].team}):")
    from spendgate.demo import curl_example

    console.print(curl_example(server.url, demo_key), soft_wrap=True)
    console.print(
        f"Claude Code: ANTHROPIC_BASE_URL={server.url} ANTHROPIC_AUTH_TOKEN={demo_key} claude", soft_wrap=True
    )
    console.print("Spend so far: spendgate spend --by team   (in another terminal, same folder)")
    _print_console_links(console, gw.store, server.url)
    if not wait:
        server.stop()
        fake.stop()
        return
    console.print("[dim]Gateway running; Ctrl-C to stop.[/dim]")
    stop = threading.Event()
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        server.stop()
        fake.stop()


def _print_report(console: Console, store: SpendStore) -> None:
    """Who spent what, and what routing saved: the tables `spendgate spend` and `savings` print."""
    from spendgate.admin.routing_service import savings_report, savings_total
    from spendgate.admin.service import spend_report
    from spendgate.cli import present as p
    from spendgate.cli.routing_cmds import savings_table_columns
    from spendgate.cli.spend_cmd import spend_table_columns, spend_total

    for by in ("team", "use_case", "model"):
        rows = spend_report(store, by, None, None)
        title = f"Spend by {by.replace('_', ' ')}"
        p.print_table(rows, spend_table_columns(by), title, [spend_total(rows, by)], console)
    rows = savings_report(store, "rule", None, None)
    title = "Routing savings by rule (asked-for model vs model used)"
    p.print_table(
        rows, savings_table_columns("rule"), title, [{"rule": "total", **savings_total(rows)}], console
    )


def _print_console_links(console: Console, store: DemoPeople, url: str) -> None:
    """The web console: one one-time sign-in link per role (15 minutes, once each)."""
    from datetime import UTC, datetime

    from spendgate.audit import Actor
    from spendgate.console.links import mint
    from spendgate.demo import grant_roles, seed_exemption

    seed_exemption(store)
    console.print(f"\n[bold]Web console[/bold] at {url}/ui/ — one-time sign-in links (15 minutes, once):")
    for role, email in grant_roles(store).items():
        link, _, _ = mint(store, Actor("spendgate demo", "cli"), email, url, datetime.now(UTC))
        console.print(f"  {role:<9} {email:<28} {link}", soft_wrap=True)
    console.print("More links later: spendgate console link --user ada@demo-corp.example", soft_wrap=True)
