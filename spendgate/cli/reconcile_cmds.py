"""`spendgate reconcile` (metered against billed, per day/provider/model, and keys that bypass the
gateway) and `spendgate reconcile import` (provider usage and cost from the admin APIs or exports)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from spendgate.cli import present as p
from spendgate.cli.common import cli_store, fail, settings
from spendgate.cli.present import FORMAT_OPTION, Col, Format, emit, emit_one, print_json, print_table

if TYPE_CHECKING:  # the provider clients (aiohttp) load when a command runs
    from spendgate.finance.reconcile import Reconciliation
    from spendgate.store.finance import ProviderUsage


class Provider(StrEnum):
    anthropic = "anthropic"
    openai = "openai"


def _read_file(file: Path, provider: str) -> tuple[list[ProviderUsage], str]:
    from spendgate.finance import provider_usage as pu

    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    try:
        if file.suffix.lower() == ".csv":
            return pu.parse_csv_export(provider, text), "csv"
        return pu.parse_json_export(provider, text), "json"
    except (ValueError, pu.ProviderAPIError) as exc:
        fail(f"{file}: {exc}")


def _fetch(
    provider: str, key_env: str, since: str, until: str | None, base_url: str | None, fmt: Format
) -> list[ProviderUsage]:
    import asyncio
    import os

    import aiohttp

    from spendgate.finance import provider_usage as pu
    from spendgate.finance import reconcile as rc

    admin_key = os.environ.get(key_env, "").strip()
    if not admin_key:
        fail(f"environment variable {key_env} (the admin key) is not set")
    try:
        start, end = rc.day_window(since, until, datetime.now(UTC).date())
        with p.progress(f"Fetching {provider} usage pages", fmt=fmt) as bar:
            return asyncio.run(
                pu.fetch_usage(
                    provider, admin_key, pu.parse_date(start), pu.parse_date(end), base_url, on_page=bar
                )
            )
    except (ValueError, pu.ProviderAPIError) as exc:
        fail(str(exc))
    except (aiohttp.ClientError, TimeoutError) as exc:
        fail(f"cannot reach the {provider} admin API: {type(exc).__name__}")


LINE_COLUMNS = [
    Col("day", missing="total", wrap=False),
    p.text("provider"),
    p.text("model"),
    p.counts("metered_requests", "requests"),
    p.money("metered_usd", "metered"),
    p.money("billed_usd", "billed"),
    p.pct("coverage_pct", "coverage"),
    p.money("difference_usd", "difference"),
]
KEY_COLUMNS = [
    p.text("provider"),
    p.text("api_key_id", "api key id", missing="(no key)"),
    p.counts("days"),
    p.counts("input_tokens", "input"),
    p.counts("output_tokens", "output"),
    p.counts("cache_read_tokens", "cache read"),
    p.counts("cache_write_tokens", "cache write"),
    p.money("billed_usd", "billed"),
    p.text("traffic", get=lambda k: "gateway" if k["gateway"] else "BYPASS"),
]
LINE_FIELDS = [
    "day",
    "provider",
    "model",
    "metered_requests",
    "metered_usd",
    "billed_usd",
    "coverage_pct",
    "difference_usd",
]


def _print_report(report: Reconciliation) -> None:
    view = report.as_json()
    title = f"Metered vs billed {report.since} .. {report.until}"
    print_table(view["lines"], LINE_COLUMNS, title, view["totals"])
    print_table(view["keys"], KEY_COLUMNS, "Provider keys")
    if not report.gateway_keys_known:
        typer.echo(
            "note: SPENDGATE_GATEWAY_PROVIDER_KEY_IDS is not set, "
            "so every provider key is reported as bypass",
            err=True,
        )


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Gateway-metered spend against the providers' own usage and cost reports.",
        invoke_without_command=True,
    )
    app.add_typer(group, name="reconcile")

    @group.callback()
    def reconcile(
        ctx: typer.Context,
        since: str | None = typer.Option(None, "--since", help="First UTC day, YYYY-MM-DD (inclusive)."),
        until: str | None = typer.Option(
            None, "--until", help="Last UTC day, YYYY-MM-DD (exclusive); default: today included."
        ),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Per day, provider and model: metered, billed, coverage and difference; and provider keys
        that are not the gateway's own (traffic that bypasses the gateway). CSV: the daily lines."""
        if ctx.invoked_subcommand is not None:
            return
        from spendgate.finance import reconcile as rc

        if since is None:
            fail("--since is required (or use `spendgate reconcile import`)")
        try:
            start, end = rc.day_window(since, until, datetime.now(UTC).date())
        except ValueError as exc:
            fail(str(exc))
        gateway_keys = rc.parse_key_ids(settings().gateway_provider_key_ids)
        with cli_store() as store:
            report = rc.reconcile(
                store.metered_by_day_model(start, end),
                store.provider_usage_rows(start, end),
                gateway_keys,
                start,
                end,
            )
        if fmt is Format.json:
            print_json(report.as_json())
        elif fmt is Format.csv:
            emit(report.as_json()["lines"], fmt, LINE_COLUMNS, fields=LINE_FIELDS)
        else:
            _print_report(report)

    @group.command("import")
    def import_(
        provider: Provider = typer.Option(..., "--provider", help="Whose usage: anthropic or openai."),
        api: bool = typer.Option(False, "--api", help="Fetch from the provider's admin usage and cost API."),
        admin_key_env: str | None = typer.Option(
            None, "--admin-key-env", help="Environment variable holding the admin key (with --api)."
        ),
        base_url: str | None = typer.Option(
            None, "--base-url", help="Admin API root (default: the provider's public API)."
        ),
        since: str | None = typer.Option(None, "--since", help="First UTC day, YYYY-MM-DD (with --api)."),
        until: str | None = typer.Option(
            None, "--until", help="Last UTC day, YYYY-MM-DD (exclusive; default: today included)."
        ),
        file: Path | None = typer.Option(
            None, "--file", help="An exported API response (.json) or CSV (.csv) instead of --api."
        ),
        fmt: Format = FORMAT_OPTION,
    ) -> None:
        """Import provider usage and cost per day, provider key and model; a re-import replaces."""
        if api == (file is not None):
            fail("give exactly one of --api or --file")
        if api:
            if not admin_key_env or not since:
                fail("--api needs --admin-key-env VAR and --since DATE")
            rows = _fetch(provider.value, admin_key_env, since, until, base_url, fmt)
            source = "api"
        else:
            assert file is not None
            rows, source = _read_file(file, provider.value)
        with cli_store() as store:
            counts = store.upsert_provider_usage(rows, source)
        if fmt is Format.table:
            typer.echo(
                f"{p.count(counts['new'])} new, {p.count(counts['replaced'])} replaced "
                f"({provider.value}, from {source})"
            )
        else:
            emit_one({"provider": provider.value, "source": source, **counts}, fmt)
