"""Reconciliation: provider usage/cost imported from fake Anthropic and OpenAI admin APIs (real HTTP,
paged) or from their JSON/CSV exports, compared exactly with seeded ledger rows; keys that bypass
the gateway are flagged."""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from typer.testing import CliRunner

from spendgate.cli import build_app
from spendgate.finance import provider_usage as pu
from spendgate.finance import reconcile as rc
from spendgate.models import LedgerRow
from spendgate.servethread import ServerThread
from spendgate.store import Store, open_store

ANTHROPIC_ADMIN = "sk-ant-admin01-test-secret"
OPENAI_ADMIN = "sk-admin-openai-test-secret"
USD = 1_000_000_000
SONNET = "claude-sonnet-4-5-20250929"
MINI = "gpt-4o-mini-2024-07-18"
GATEWAY_KEYS = "apikey_gw, key_gw"


# --- the fake admin APIs: documented shapes, one daily bucket per page -------------------------
def _a_bucket(day: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"starting_at": f"{day}T00:00:00Z", "ending_at": f"{day}T23:59:59Z", "results": results}


def _a_usage(key: str | None, model: str, uncached: int, output: int, **extra: int) -> dict[str, Any]:
    return {
        "uncached_input_tokens": uncached,
        "cache_creation": {
            "ephemeral_5m_input_tokens": extra.get("cw5", 0),
            "ephemeral_1h_input_tokens": extra.get("cw1h", 0),
        },
        "cache_read_input_tokens": extra.get("cr", 0),
        "output_tokens": output,
        "server_tool_use": {"web_search_requests": 0},
        "api_key_id": key,
        "workspace_id": None,
        "model": model,
        "service_tier": "standard",
        "context_window": "0-200k",
    }


def _a_cost(model: str, cents: str, token_type: str) -> dict[str, Any]:
    return {
        "currency": "USD",
        "amount": cents,
        "workspace_id": None,
        "description": f"Claude Sonnet 4.5 Usage - {token_type}",
        "cost_type": "tokens",
        "context_window": "0-200k",
        "model": model,
        "service_tier": "standard",
        "token_type": token_type,
    }


ANTHROPIC_USAGE = [
    _a_bucket(
        "2026-11-01",
        [
            _a_usage("apikey_gw", SONNET, 1000, 500, cw5=100, cw1h=50, cr=200),
            _a_usage("apikey_rogue", SONNET, 300, 100),
        ],
    ),
    _a_bucket("2026-11-02", [_a_usage("apikey_gw", SONNET, 2000, 800)]),
]
ANTHROPIC_COST = [
    _a_bucket(
        "2026-11-01",
        [_a_cost(SONNET, "300", "uncached_input_tokens"), _a_cost(SONNET, "100.5", "output_tokens")],
    ),
    _a_bucket("2026-11-02", [_a_cost(SONNET, "250", "output_tokens")]),
]

NOV1 = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp())


def _o_bucket(day_index: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    start = NOV1 + day_index * 86400
    return {"object": "bucket", "start_time": start, "end_time": start + 86400, "results": results}


def _o_usage(key: str, model: str, inp: int, cached: int, out: int, requests: int) -> dict[str, Any]:
    return {
        "object": "organization.usage.completions.result",
        "input_tokens": inp,
        "input_cached_tokens": cached,
        "output_tokens": out,
        "input_audio_tokens": 0,
        "output_audio_tokens": 0,
        "num_model_requests": requests,
        "project_id": None,
        "user_id": None,
        "api_key_id": key,
        "model": model,
        "batch": None,
    }


def _o_cost(key: str, line_item: str, value: float) -> dict[str, Any]:
    return {
        "object": "organization.costs.result",
        "amount": {"value": value, "currency": "usd"},
        "line_item": line_item,
        "project_id": None,
        "api_key_id": key,
    }


OPENAI_USAGE = [
    _o_bucket(0, [_o_usage("key_gw", MINI, 1000, 400, 200, 5), _o_usage("key_bypass", MINI, 50, 0, 10, 1)]),
]
OPENAI_COST = [
    _o_bucket(
        0,
        [
            _o_cost("key_gw", f"{MINI}, input", 0.25),
            _o_cost("key_gw", f"{MINI}, output", 0.5),
            _o_cost("key_bypass", f"{MINI}, input", 0.125),
        ],
    ),
]


def _paged(buckets: list[dict[str, Any]], request: Request) -> JSONResponse:
    index = int(request.query_params.get("page", "0"))
    more = index + 1 < len(buckets)
    body: dict[str, Any] = {"data": buckets[index : index + 1], "has_more": more}
    body["next_page"] = str(index + 1) if more else None
    if "start_time" in request.query_params:
        body["object"] = "page"
    return JSONResponse(body)


class FakeAdminAPI:
    """Both providers' admin endpoints; every request is recorded (path, query)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

        def endpoint(buckets: list[dict[str, Any]], provider: str) -> Any:
            async def handle(request: Request) -> JSONResponse:
                self.requests.append((request.url.path, request.url.query))
                if provider == "anthropic":
                    ok = request.headers.get("x-api-key") == ANTHROPIC_ADMIN
                    ok = ok and bool(request.headers.get("anthropic-version"))
                else:
                    ok = request.headers.get("authorization") == f"Bearer {OPENAI_ADMIN}"
                if not ok:
                    return JSONResponse({"error": {"type": "authentication_error"}}, status_code=401)
                return _paged(buckets, request)

            return handle

        self.app = Starlette(
            routes=[
                Route("/v1/organizations/usage_report/messages", endpoint(ANTHROPIC_USAGE, "anthropic")),
                Route("/v1/organizations/cost_report", endpoint(ANTHROPIC_COST, "anthropic")),
                Route("/v1/organization/usage/completions", endpoint(OPENAI_USAGE, "openai")),
                Route("/v1/organization/costs", endpoint(OPENAI_COST, "openai")),
            ]
        )


@pytest.fixture(scope="module")
def admin_api() -> Iterator[tuple[str, FakeAdminAPI]]:
    fake = FakeAdminAPI()
    with ServerThread(fake.app) as server:
        yield server.url, fake


# --- store, ledger and CLI ---------------------------------------------------------------------
def ledger(store: Store, provider: str, model: str, started_at: str, nanos: int) -> None:
    store.insert_ledger_rows(
        [
            LedgerRow(
                request_id=f"req-{provider}-{started_at}-{nanos}",
                provider=provider,
                endpoint="/v1/messages" if provider == "anthropic" else "/v1/chat/completions",
                started_at=started_at,
                ended_at=started_at,
                status_code=200,
                status="ok",
                use_case="untagged",
                requested_model=model.rsplit("-", 1)[0],
                upstream_model=model.rsplit("-", 1)[0],
                response_model=model,
                cost_nanos=nanos,
            )
        ]
    )


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = open_store(database_url)
    s.migrate()
    ledger(s, "anthropic", SONNET, "2026-10-31T23:59:59.999999Z", 7 * USD)  # before the window
    ledger(s, "anthropic", SONNET, "2026-11-01T08:00:00.000000Z", 1_500_000_000)
    ledger(s, "anthropic", SONNET, "2026-11-01T23:59:59.999999Z", 1_500_000_000)
    ledger(s, "anthropic", SONNET, "2026-11-02T12:00:00.000000Z", 2_500_000_000)
    ledger(s, "anthropic", SONNET, "2026-11-03T00:00:00.000000Z", 9 * USD)  # after the window
    ledger(s, "openai", MINI, "2026-11-01T10:00:00.000000Z", 750_000_000)
    yield s
    s.close()


class Cli:
    def __init__(self, database_url: str, **env: str) -> None:
        self.app = build_app()
        self.runner = CliRunner(
            env={
                "SPENDGATE_DATABASE_URL": database_url,
                "SPENDGATE_GATEWAY_PROVIDER_KEY_IDS": GATEWAY_KEYS,
                "ANTHROPIC_ADMIN_KEY": ANTHROPIC_ADMIN,
                "OPENAI_ADMIN_KEY": OPENAI_ADMIN,
                **env,
            }
        )

    def run(self, command: str) -> tuple[int, str, str]:
        result = self.runner.invoke(self.app, shlex.split(command))
        return result.exit_code, result.stdout, result.stderr

    def ok(self, command: str) -> str:
        code, out, err = self.run(command)
        assert code == 0, (command, out, err)
        return out


@pytest.fixture
def cli(database_url: str, store: Store) -> Cli:
    return Cli(database_url)


def api_import(cli: Cli, url: str, provider: str) -> str:
    env = "ANTHROPIC_ADMIN_KEY" if provider == "anthropic" else "OPENAI_ADMIN_KEY"
    return cli.ok(
        f"reconcile import --provider {provider} --api --admin-key-env {env} --base-url {url} "
        "--since 2026-11-01 --until 2026-11-03"
    ).strip()


def report(cli: Cli) -> dict[str, Any]:
    out = cli.ok("reconcile --since 2026-11-01 --until 2026-11-03 --format json")
    value: dict[str, Any] = json.loads(out)
    return value


def usage_rows(store: Store) -> list[dict[str, Any]]:
    return [
        dataclasses.asdict(r) for r in store.provider_usage_rows("2026-11-01", "2026-11-03")
    ]


EXPECTED_LINES = [
    {
        "day": "2026-11-01",
        "provider": "anthropic",
        "model": SONNET,
        "metered_requests": 2,
        "metered_usd": "3",
        "billed_usd": "4.005",
        "coverage_pct": "74.91",  # 3 / 4.005 = 0.749063...
        "difference_usd": "1.005",
    },
    {
        "day": "2026-11-01",
        "provider": "openai",
        "model": MINI,
        "metered_requests": 1,
        "metered_usd": "0.75",
        "billed_usd": "0.875",
        "coverage_pct": "85.71",  # 0.75 / 0.875 = 0.857142...
        "difference_usd": "0.125",
    },
    {
        "day": "2026-11-02",
        "provider": "anthropic",
        "model": SONNET,
        "metered_requests": 1,
        "metered_usd": "2.5",
        "billed_usd": "2.5",
        "coverage_pct": "100.00",
        "difference_usd": "0",
    },
]


# --- tests -------------------------------------------------------------------------------------
def test_import_both_providers_via_api_and_reconcile_exactly(
    cli: Cli, store: Store, admin_api: tuple[str, FakeAdminAPI]
) -> None:
    url, fake = admin_api
    fake.requests.clear()
    assert api_import(cli, url, "anthropic") == "5 new, 0 replaced (anthropic, from api)"
    assert api_import(cli, url, "openai") == "2 new, 0 replaced (openai, from api)"
    paths = [p for p, _ in fake.requests]
    # one daily bucket per page: every page was followed
    assert paths.count("/v1/organizations/usage_report/messages") == 2
    assert paths.count("/v1/organizations/cost_report") == 2
    usage_query = parse_qs(next(q for p, q in fake.requests if p.endswith("usage_report/messages")))
    assert usage_query["group_by[]"] == ["api_key_id", "model"]
    assert (usage_query["bucket_width"], usage_query["starting_at"]) == (["1d"], ["2026-11-01T00:00:00Z"])
    assert usage_query["ending_at"] == ["2026-11-03T00:00:00Z"]
    openai_query = parse_qs(next(q for p, q in fake.requests if p.endswith("usage/completions")))
    assert openai_query["start_time"] == [str(NOV1)] and openai_query["group_by"] == ["api_key_id", "model"]

    result = report(cli)
    assert result["lines"] == EXPECTED_LINES
    assert result["totals"] == [
        {
            "provider": "anthropic",
            "metered_requests": 3,
            "metered_usd": "5.5",
            "billed_usd": "6.505",
            "coverage_pct": "84.55",  # 5.5 / 6.505 = 0.845503...
            "difference_usd": "1.005",
        },
        {
            "provider": "openai",
            "metered_requests": 1,
            "metered_usd": "0.75",
            "billed_usd": "0.875",
            "coverage_pct": "85.71",
            "difference_usd": "0.125",
        },
    ]
    keys = {(k["provider"], k["api_key_id"]): k for k in result["keys"]}
    assert set(keys) == {
        ("anthropic", "apikey_gw"),
        ("anthropic", "apikey_rogue"),
        ("openai", "key_bypass"),
        ("openai", "key_gw"),
    }
    assert result["bypass_keys"] == ["anthropic:apikey_rogue", "openai:key_bypass"]
    gw = keys[("anthropic", "apikey_gw")]
    assert (gw["days"], gw["input_tokens"], gw["output_tokens"]) == (2, 3000, 800 + 500)
    assert (gw["cache_read_tokens"], gw["cache_write_tokens"], gw["billed_usd"]) == (200, 150, None)
    assert keys[("openai", "key_gw")] | {} == {
        "provider": "openai",
        "api_key_id": "key_gw",
        "days": 1,
        "input_tokens": 600,
        "output_tokens": 200,
        "cache_read_tokens": 400,
        "cache_write_tokens": 0,
        "billed_usd": "0.75",
        "gateway": True,
        "bypass": False,
    }
    assert keys[("openai", "key_bypass")]["billed_usd"] == "0.125"

    table = cli.ok("reconcile --since 2026-11-01 --until 2026-11-03")
    assert "74.9%" in table and "BYPASS" in table and "apikey_rogue" in table


def test_reimport_replaces_and_admin_key_never_printed(
    cli: Cli, store: Store, admin_api: tuple[str, FakeAdminAPI]
) -> None:
    url, _ = admin_api
    assert api_import(cli, url, "anthropic") == "5 new, 0 replaced (anthropic, from api)"
    before = usage_rows(store)
    assert api_import(cli, url, "anthropic") == "0 new, 5 replaced (anthropic, from api)"
    assert usage_rows(store) == before
    assert report(cli)["lines"][0] == EXPECTED_LINES[0]

    bad = Cli(cli.runner.env["SPENDGATE_DATABASE_URL"] or "", ANTHROPIC_ADMIN_KEY="sk-ant-admin01-wrong")
    code, out, err = bad.run(
        f"reconcile import --provider anthropic --api --admin-key-env ANTHROPIC_ADMIN_KEY --base-url {url} "
        "--since 2026-11-01"
    )
    assert code == 1 and "401" in err
    assert "sk-ant-admin01" not in out + err
    code, _, err = cli.run(
        f"reconcile import --provider openai --api --admin-key-env NOT_SET_ANYWHERE --base-url {url} "
        "--since 2026-11-01"
    )
    assert code == 1 and "NOT_SET_ANYWHERE" in err


def test_json_exports_import_like_the_api(
    cli: Cli, store: Store, admin_api: tuple[str, FakeAdminAPI], tmp_path: Path
) -> None:
    for provider, pages in (
        ("anthropic", [{"data": ANTHROPIC_USAGE}, {"data": ANTHROPIC_COST}]),
        ("openai", [{"object": "page", "data": OPENAI_USAGE}, {"object": "page", "data": OPENAI_COST}]),
    ):
        file = tmp_path / f"{provider}.json"
        file.write_text(json.dumps(pages))
        out = cli.ok(f"reconcile import --provider {provider} --file {file}")
        assert out.endswith("(from json)\n".replace("(", f"({provider}, "))
    from_files = usage_rows(store)
    url, _ = admin_api
    assert api_import(cli, url, "anthropic") == "0 new, 5 replaced (anthropic, from api)"
    assert api_import(cli, url, "openai") == "0 new, 2 replaced (openai, from api)"
    assert usage_rows(store) == from_files
    assert report(cli)["lines"] == EXPECTED_LINES


def test_csv_import_is_idempotent_and_flags_bypass(cli: Cli, store: Store, tmp_path: Path) -> None:
    file = tmp_path / "usage.csv"
    file.write_text(
        ",".join(pu.CSV_COLUMNS) + "\n"
        f"2026-11-01,anthropic,apikey_gw,{SONNET},1000,500,200,150,2.5\n"
        f"2026-11-01,anthropic,apikey_console,{SONNET},10,5,0,0,0.5\n"
        f"2026-11-02,anthropic,apikey_gw,{SONNET},2000,800,0,0,\n"
    )
    assert cli.ok(f"reconcile import --provider anthropic --file {file}").strip() == (
        "3 new, 0 replaced (anthropic, from csv)"
    )
    assert cli.ok(f"reconcile import --provider anthropic --file {file}").strip() == (
        "0 new, 3 replaced (anthropic, from csv)"
    )
    assert len(usage_rows(store)) == 3
    result = report(cli)
    assert result["lines"][0]["billed_usd"] == "3"
    assert result["lines"][0]["coverage_pct"] == "100.00"
    day2 = next(line for line in result["lines"] if line["day"] == "2026-11-02")
    assert (day2["billed_usd"], day2["coverage_pct"], day2["difference_usd"]) == (None, None, None)
    assert result["bypass_keys"] == ["anthropic:apikey_console"]

    wrong = tmp_path / "openai.csv"
    wrong.write_text(file.read_text())
    code, _, err = cli.run(f"reconcile import --provider openai --file {wrong}")
    assert code == 1 and "expected 'openai'" in err


def test_cli_usage_errors(cli: Cli, tmp_path: Path) -> None:
    assert cli.run("reconcile")[0] == 1
    assert cli.run("reconcile --since 2026-11-03 --until 2026-11-01")[0] == 1
    assert cli.run("reconcile import --provider openai")[0] == 1
    code, _, err = cli.run("reconcile import --provider openai --api --since 2026-11-01")
    assert code == 1 and "--admin-key-env" in err
    bad = tmp_path / "bad.json"
    bad.write_text('{"nope": 1}')
    assert cli.run(f"reconcile import --provider openai --file {bad}")[0] == 1


def test_without_gateway_keys_every_key_is_bypass(database_url: str, store: Store, tmp_path: Path) -> None:
    store.upsert_provider_usage([pu.ProviderUsage("2026-11-01", "openai", "key_x", MINI, 1, 1)], "csv")
    cli = Cli(database_url, SPENDGATE_GATEWAY_PROVIDER_KEY_IDS="")
    result = report(cli)
    assert result["bypass_keys"] == ["openai:key_x"] and result["gateway_keys_configured"] is False


# --- pure parts --------------------------------------------------------------------------------
def test_coverage_is_exact() -> None:
    assert rc.coverage(3 * USD, 4 * USD) == Decimal("75.00")
    assert rc.coverage(2, 3) == Decimal("66.67")
    assert rc.coverage(1, 8) == Decimal("12.50")
    assert rc.coverage(5, 0) is None and rc.coverage(5, None) is None
    assert rc.parse_key_ids(" a, b ,,c") == frozenset({"a", "b", "c"})


def test_costs_parse_to_exact_nanos() -> None:
    rows = pu.anthropic_rows({"data": ANTHROPIC_COST})
    assert [(r.day, r.api_key_id, r.cost_nanos) for r in pu.merge(rows)] == [
        ("2026-11-01", pu.NO_KEY_SPLIT, 4_005_000_000),
        ("2026-11-02", pu.NO_KEY_SPLIT, 2_500_000_000),
    ]
    text = json.dumps(
        {"data": [_o_bucket(0, [_o_cost("k", "m, input", 0.1), _o_cost("k", "m, output", 0.2)])]}
    )
    assert [r.cost_nanos for r in pu.parse_json_export("openai", text)] == [300_000_000]
