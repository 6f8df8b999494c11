"""`spendgate reconcile` (metered against billed, per day/provider/model, and keys that bypass the
gateway) and `spendgate reconcile import` (provider usage and cost from the admin APIs or exports)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from spendgate.cli.common import Format, cli_store, fail, print_json, print_table, settings

if TYPE_CHECKING:  # the provider clients (aiohttp) load when a command runs
    from spendgate.finance.reconcile import Reconciliation
    from spendgate.store.finance import ProviderUsage


class Provider(StrEnum):
    anthropic = "anthropic"
    openai = "openai"


def _usd(nanos: int | None) -> str:
    from spendgate.pricing import format_usd

    return "-" if nanos is None else format_usd(nanos)


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value}%"


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
    provider: str, key_env: str, since: str, until: str | None, base_url: str | None
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
        return asyncio.run(
            pu.fetch_usage(provider, admin_key, pu.parse_date(start), pu.parse_date(end), base_url)
        )
    except (ValueError, pu.ProviderAPIError) as exc:
        fail(str(exc))
    except (aiohttp.ClientError, TimeoutError) as exc:
        fail(f"cannot reach the {provider} admin API: {type(exc).__name__}")


def _print_report(report: Reconciliation) -> None:
    from spendgate.pricing import format_usd

    print_table(
        ["day", "provider", "model", "requests", "metered_usd", "billed_usd", "coverage", "difference_usd"],
        [
            [
                line.day or "total",
                line.provider,
                line.model,
                line.metered_requests,
                format_usd(line.metered_nanos),
                _usd(line.billed_nanos),
                _pct(line.coverage_pct),
                _usd(line.difference_nanos),
            ]
            for line in [*report.lines, *report.totals]
        ],
        f"Metered vs billed {report.since} .. {report.until}",
    )
    print_table(
        [
            "provider",
            "api_key_id",
            "days",
            "input",
            "output",
            "cache_read",
            "cache_write",
            "billed_usd",
            "traffic",
        ],
        [
            [
                k.provider,
                k.api_key_id or "(no key)",
                k.days,
                k.input_tokens,
                k.output_tokens,
                k.cache_read_tokens,
                k.cache_write_tokens,
                _usd(k.billed_nanos),
                "gateway" if k.gateway else "BYPASS",
            ]
            for k in report.keys
        ],
        "Provider keys",
    )
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
        fmt: Format = typer.Option(Format.table, "--format", help="Output format."),
    ) -> None:
        """Per day, provider and model: metered, billed, coverage and difference; and provider keys
        that are not the gateway's own (traffic that bypasses the gateway)."""
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
    ) -> None:
        """Import provider usage and cost per day, provider key and model; a re-import replaces."""
        if api == (file is not None):
            fail("give exactly one of --api or --file")
        if api:
            if not admin_key_env or not since:
                fail("--api needs --admin-key-env VAR and --since DATE")
            rows = _fetch(provider.value, admin_key_env, since, until, base_url)
            source = "api"
        else:
            assert file is not None
            rows, source = _read_file(file, provider.value)
        with cli_store() as store:
            counts = store.upsert_provider_usage(rows, source)
        typer.echo(f"{counts['new']} new, {counts['replaced']} replaced ({provider.value}, from {source})")
