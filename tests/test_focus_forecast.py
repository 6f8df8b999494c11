"""Chargeback (FOCUS 1.2 export) and the month-end forecast."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import shutil
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from spendgate.cli import build_app
from spendgate.finance import focus
from spendgate.finance import forecast as fc
from spendgate.models import LedgerRow
from spendgate.pricing import Usage, cost_of, load_overrides
from spendgate.store import open_store
from spendgate.store.base import Store

USD = 1_000_000_000
PRICES = (
    '[models."test-sonnet"]\ninput = 3\noutput = 15\ncache_read = 0.3\ncache_write_5m = 3.75\n'
    "cache_write_1h = 6\nweb_search_per_k = 10\n"
    '[models."test-mini"]\ninput = 0.15\noutput = 0.6\n'
)
# From the FOCUS 1.2 spec sheet (docs/../shared/reference/focus.md): mandatory columns and nullability.
NOT_NULL = [
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "BillingAccountId",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ServiceName",
    "ServiceCategory",
    "ProviderName",
    "PublisherName",
    "InvoiceIssuerName",
]
NULLABLE = ["PricingQuantity", "PricingUnit", "BillingAccountName", "ChargeClass", "ChargeDescription"]
MANDATORY = {**dict.fromkeys(NOT_NULL, False), **dict.fromkeys(NULLABLE, True)}
DECIMALS = (
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "PricingQuantity",
    "ConsumedQuantity",
)
DATETIMES = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
FOCUS_RULES = "1.2.0.1"  # the FOCUS 1.2 rule set bundled with focus-validator 2.2
DECIMAL_TEXT = re.compile(r"^-?\d+(\.\d+)?$")


def _row(n: int, started: str, **kw: Any) -> LedgerRow:
    base: dict[str, Any] = {
        "request_id": f"req_{n}",
        "provider": "anthropic",
        "endpoint": "/v1/messages",
        "started_at": started,
        "ended_at": started,
        "status_code": 200,
        "status": "ok",
        "use_case": "coding",
        "upstream_model": "test-sonnet",
        "requested_model": "test-sonnet",
        "pricing_tier": "standard",
    }
    base.update(kw)
    return LedgerRow(**base)


def _priced(n: int, started: str, prices: Path, batch: bool = False, **kw: Any) -> LedgerRow:
    model = kw.get("upstream_model", "test-sonnet")
    price = load_overrides(prices)[model]
    fields = ("input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens")
    usage = Usage(**{f: kw.get(f, 0) for f in (*fields, "output_tokens", "web_search_requests")}, batch=batch)
    cost = cost_of(price, usage)
    kw.setdefault("cost_nanos", cost.nanos)
    return _row(n, started, price_ref=cost.price_ref, pricing_tier=cost.tier, **kw)


@pytest.fixture
def env(tmp_path: Path) -> tuple[Store, CliRunner, Path]:
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES)
    store = open_store(f"sqlite:///{tmp_path}/x.db")
    store.migrate()
    org = store.create_org("acme")
    store.create_team(org.id, "platform", "CC-100")
    store.create_team(org.id, "payments", "CC-200")
    runner = CliRunner(
        env={
            "SPENDGATE_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
            "SPENDGATE_PRICE_OVERRIDES_FILE": str(prices),
        }
    )
    return store, runner, prices


def _seed_month(store: Store, prices: Path) -> int:
    """Seed November 2026 (plus rows either side); return November's ledger total in nanos."""
    teams = {t.name: t for t in store.list_teams()}
    p, q = teams["platform"], teams["payments"]
    who: dict[str, dict[str, Any]] = {
        "platform": {"team_id": p.id, "cost_center": "CC-100", "org_id": p.org_id}
    }
    who["payments"] = {"team_id": q.id, "cost_center": "CC-200", "org_id": q.org_id}
    big: dict[str, Any] = {"input_tokens": 1000, "output_tokens": 500, "cache_read_tokens": 2000}
    small: dict[str, Any] = {
        "input_tokens": 7,
        "output_tokens": 3,
        "cache_write_5m_tokens": 11,
        "web_search_requests": 1,
    }
    small["use_case"] = "review"
    mini: dict[str, Any] = {
        "provider": "openai",
        "upstream_model": "test-mini",
        "input_tokens": 333,
        "output_tokens": 77,
    }
    mini["use_case"] = "support"
    rows = [
        # exactly at the month's first instant: included
        _priced(1, "2026-11-01T00:00:00.000000Z", prices, **big, **who["platform"]),
        _priced(2, "2026-11-01T13:00:00.000000Z", prices, **big, **who["platform"]),
        _priced(3, "2026-11-02T09:00:00.000000Z", prices, **small, batch=True, **who["platform"]),
        _priced(4, "2026-11-02T10:00:00.000000Z", prices, **mini, **who["payments"]),
        # an estimated row whose cost is not what the rates give: the remainder lands on output
        _priced(
            5,
            "2026-11-30T23:59:59.999999Z",
            prices,
            input_tokens=1000,
            output_tokens=500,
            cost_nanos=10_500_001,
            estimated=True,
            **who["payments"],
        ),
        # outside November
        _priced(6, "2026-10-31T23:59:59.999999Z", prices, input_tokens=10**6, **who["platform"]),
        _priced(7, "2026-12-01T00:00:00.000000Z", prices, input_tokens=10**6, **who["platform"]),
    ]
    store.insert_ledger_rows(rows)
    return sum(r.cost_nanos for r in rows[:5])


def _csv(runner: CliRunner, *args: str) -> list[dict[str, str]]:
    result = runner.invoke(build_app(), ["chargeback", "--month", "2026-11", "--format", "focus-csv", *args])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


# --- splitting a row ---


def test_split_row_exact_parts() -> None:
    row = {
        "cost_nanos": 11_100_000,
        "input_tokens": 1000,
        "output_tokens": 500,
        "cache_read_tokens": 2000,
        "cache_write_5m_tokens": 0,
        "cache_write_1h_tokens": 0,
        "web_search_requests": 0,
        "pricing_tier": "standard",
    }
    price = load_overrides_text(PRICES)["test-sonnet"]
    parts = {p.token_type: p for p in focus.split_row(row, price)}
    assert {k: p.cost_nanos for k, p in parts.items()} == {
        "input": 3_000_000,
        "cache_read": 600_000,
        "output": 7_500_000,
    }
    assert parts["input"].unit_price == Decimal("0.000003")
    assert parts["cache_read"].quantity == 2000
    # a cost the rates do not give: shared in proportion (3:0.6:7.5), rounded to the nano
    row["cost_nanos"] = 11_100_002
    parts = {p.token_type: p for p in focus.split_row(row, price)}
    assert {k: p.cost_nanos for k, p in parts.items()} == {
        "input": 3_000_001,
        "cache_read": 600_000,
        "output": 7_500_001,
    }
    # equal halves of 3 nanos round to 2 + 2; the -1 remainder goes on the output line
    row.update(cost_nanos=3, input_tokens=5, output_tokens=1, cache_read_tokens=0)
    parts = {p.token_type: p for p in focus.split_row(row, price)}
    assert {k: p.cost_nanos for k, p in parts.items()} == {"input": 2, "output": 1}


def test_split_row_always_sums_to_the_row() -> None:
    price = load_overrides_text(PRICES)["test-sonnet"]
    rng = random.Random(6)
    for _ in range(2000):
        row: dict[str, Any] = {
            c: rng.choice([0, 0, 1, 7, rng.randrange(10**6)]) for _, c, _, _ in focus.TOKEN_TYPES
        }
        row["cost_nanos"] = rng.randrange(10**8)
        row["pricing_tier"] = rng.choice(["standard", "batch"])
        parts = focus.split_row(row, rng.choice([price, None]))
        assert sum(p.cost_nanos for p in parts) == row["cost_nanos"]


def load_overrides_text(text: str) -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.toml"
        path.write_text(text)
        return load_overrides(path)


# --- the FOCUS export ---


def test_focus_csv_total_matches_ledger_to_the_nano(env: tuple[Store, CliRunner, Path]) -> None:
    store, runner, prices = env
    total = _seed_month(store, prices)
    rows = _csv(runner)
    billed = sum(Decimal(r["BilledCost"]) for r in rows)
    assert billed * USD == total
    assert sum(Decimal(r["EffectiveCost"]) for r in rows) * USD == total
    # one row per (day, cost center, team, use case, model, token type)
    day1 = [r for r in rows if r["ChargePeriodStart"] == "2026-11-01T00:00:00Z"]
    assert sorted((r["x_TokenType"], r["BilledCost"], r["ConsumedQuantity"]) for r in day1) == [
        ("cache_read", "0.0012", "4000.0"),
        ("input", "0.006", "2000.0"),
        ("output", "0.015", "1000.0"),
    ]
    inp = next(r for r in day1 if r["x_TokenType"] == "input")
    assert inp["ListUnitPrice"] == "0.000003" and inp["PricingUnit"] == "Tokens"
    assert (
        inp["SkuId"] == "anthropic/test-sonnet/input"
        and inp["SkuPriceId"] == "anthropic/test-sonnet/input/standard"
    )
    assert (inp["SubAccountId"], inp["x_CostCenter"], inp["x_Team"], inp["x_UseCase"]) == (
        "CC-100",
        "CC-100",
        "platform",
        "coding",
    )
    assert (inp["ProviderName"], inp["PublisherName"], inp["InvoiceIssuerName"]) == ("Anthropic",) * 3
    assert json.loads(inp["Tags"])["team"] == "platform"
    # the estimated row's extra nano-dollar is on its output line
    last = {
        r["x_TokenType"]: r["BilledCost"] for r in rows if r["ChargePeriodStart"] == "2026-11-30T00:00:00Z"
    }
    assert last == {"input": "0.003", "output": "0.007500001"}
    openai = [r for r in rows if r["ProviderName"] == "OpenAI"]
    assert {r["ServiceName"] for r in openai} == {"OpenAI API"} and len(openai) == 2
    batch = [r for r in rows if r["x_PricingTier"] == "batch"]
    assert {r["x_TokenType"] for r in batch} == {"input", "cache_write_5m", "output", "web_search"}
    web = next(r for r in batch if r["x_TokenType"] == "web_search")
    assert (web["ConsumedUnit"], web["ListUnitPrice"]) == ("Requests", "0.005")


def test_focus_csv_follows_the_spec_sheet(env: tuple[Store, CliRunner, Path]) -> None:
    store, runner, prices = env
    _seed_month(store, prices)
    rows = _csv(runner)
    assert rows
    assert set(MANDATORY) <= set(rows[0])
    custom = [c for c in rows[0] if c[0].islower()]
    assert custom and all(c.startswith("x_") for c in custom)
    assert {"x_Team", "x_UseCase", "x_CostCenter"} <= set(custom)
    for row in rows:
        for column, nullable in MANDATORY.items():
            assert nullable or row[column] != "", (column, row)
        for column in DATETIMES:
            assert ISO_Z.match(row[column]), (column, row[column])
        for column in DECIMALS:
            assert DECIMAL_TEXT.match(row[column]), (column, row[column])
        assert row["BillingPeriodStart"] == "2026-11-01T00:00:00Z"
        assert row["BillingPeriodEnd"] == "2026-12-01T00:00:00Z"
        assert row["BillingPeriodStart"] <= row["ChargePeriodStart"] < row["ChargePeriodEnd"]
        assert row["ChargePeriodEnd"] <= row["BillingPeriodEnd"]
        assert row["BillingCurrency"] == "USD"
        assert row["ChargeCategory"] == "Usage" and row["ChargeClass"] == ""
        assert row["ChargeFrequency"] == "Usage-Based"
        assert row["ServiceCategory"] == "AI and Machine Learning"
        assert row["RegionId"] == row["RegionName"] == row["ResourceId"] == ""
        assert row["ConsumedUnit"] in ("Tokens", "Requests")
        assert json.loads(row["Tags"])
        # unit price x quantity gives the cost (within the one-nano remainder)
        listed = Decimal(row["ListUnitPrice"]) * Decimal(row["PricingQuantity"])
        assert abs(listed - Decimal(row["ListCost"])) <= Decimal("0.000000002")


def test_focus_parquet(env: tuple[Store, CliRunner, Path], tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    store, runner, prices = env
    total = _seed_month(store, prices)
    out = tmp_path / "focus.parquet"
    result = runner.invoke(
        build_app(), ["chargeback", "--month", "2026-11", "--format", "focus-parquet", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert set(MANDATORY) <= set(table.column_names)
    assert str(table.schema.field("BilledCost").type) == "decimal128(38, 9)"
    assert table.schema.field("ChargePeriodStart").type.tz == "UTC"  # Parquet keeps seconds as ms
    assert table.column("ChargePeriodStart").to_pylist()[0] == datetime(2026, 11, 1, tzinfo=UTC)
    assert sum(table.column("BilledCost").to_pylist()) * USD == total
    assert table.num_rows == len(_csv(runner))
    for name, nullable in MANDATORY.items():
        assert nullable or table.column(name).null_count == 0, name


@pytest.mark.parametrize("fmt", ["focus-csv", "focus-parquet"])
def test_focus_validator(env: tuple[Store, CliRunner, Path], tmp_path: Path, fmt: str) -> None:
    """The FinOps Foundation's validator (focus-validator 2.x, FOCUS 1.2 rules bundled) passes both exports.

    It needs Python >= 3.12, so it lives in its own virtualenv: `.ci/run` creates it and sets
    SPENDGATE_FOCUS_VALIDATOR, and then this test fails rather than skips if it cannot run."""
    exe = os.environ.get("SPENDGATE_FOCUS_VALIDATOR") or shutil.which("focus-validator")
    if not exe or not Path(exe).exists():
        if os.environ.get("SPENDGATE_FOCUS_VALIDATOR"):
            pytest.fail(f"SPENDGATE_FOCUS_VALIDATOR={exe} does not exist")
        pytest.skip("focus-validator not found: install it and set SPENDGATE_FOCUS_VALIDATOR=/path/to/it")
    if fmt == "focus-parquet":
        pytest.importorskip("pyarrow")
    store, runner, prices = env
    _seed_month(store, prices)
    out = tmp_path / ("focus.csv" if fmt == "focus-csv" else "focus.parquet")
    args = ["chargeback", "--month", "2026-11", "--format", fmt, "--output", str(out)]
    result = runner.invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    # It reads its bundled currency list by a path relative to the working directory
    # ('focus_validator/rules/currency_codes.csv'), so it runs from its own site-packages.
    where = subprocess.run(
        [str(Path(exe).parent / "python"), "-c", "import focus_validator as f; print(f.__path__[0])"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.returncode == 0, where.stderr
    site = Path(where.stdout.strip()).parent
    xml = tmp_path / "focus-validator.xml"
    check = subprocess.run(
        # --block-download: the rules bundled with the validator, never GitHub (CI is offline)
        [
            *(exe, "--data-file", str(out), "--validate-version", FOCUS_RULES, "--block-download"),
            *("--output-type", "unittest", "--output-destination", str(xml)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=site,
    )
    assert check.returncode == 0 and xml.exists(), (check.stdout + check.stderr)[-4000:]
    results = _validator_results(xml)
    passed = {rule for rule, outcome in results.items() if outcome == "pass"}
    assert len(passed) >= 100, results  # it really checked the file
    # The validator reports both branches of a nullability "either/or" rule and fails the one not
    # taken (InvoiceId-C-004-C "MUST be null" when C-005-C "MUST NOT be null" holds, and the OR rule
    # InvoiceId-C-003-C passes). A branch of a passing OR rule is not a failure; anything else is.
    branches = _or_branches(site / "focus_validator" / "rules" / f"model-{FOCUS_RULES}.json")
    failed = sorted(
        rule
        for rule, outcome in results.items()
        if outcome == "fail" and not any(parent in passed for parent in branches.get(rule, ()))
    )
    assert failed == [], (failed, check.stdout[-4000:])


def _validator_results(xml: Path) -> dict[str, str]:
    """Rule id -> pass / fail / skip, from the validator's JUnit-style report."""
    import xml.etree.ElementTree as ET

    results = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        rule = case.attrib["name"].split(" ::")[0]
        outcome = "pass"
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "fail"
        elif case.find("skipped") is not None:
            outcome = "skip"
        results[rule] = outcome
    return results


def _or_branches(model: Path) -> dict[str, list[str]]:
    """Rule id -> the OR rules it is a branch of, from the validator's own rule model."""
    rules = json.loads(model.read_text())["ModelRules"]
    parents: dict[str, list[str]] = {}
    for rule_id, rule in rules.items():
        requirement = rule.get("ValidationCriteria", {}).get("Requirement", {})
        if requirement.get("CheckFunction") == "OR":
            for item in requirement.get("Items", []):
                if item.get("CheckFunction") == "CheckModelRule":
                    parents.setdefault(item["ModelRuleId"], []).append(rule_id)
    return parents


# --- the chargeback summary ---


def test_chargeback_json(env: tuple[Store, CliRunner, Path]) -> None:
    store, runner, prices = env
    total = _seed_month(store, prices)
    result = runner.invoke(build_app(), ["chargeback", "--month", "2026-11", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["month"] == "2026-11"
    assert Decimal(data["total_usd"]) * USD == total
    centers = {c["cost_center"]: c for c in data["cost_centers"]}
    assert set(centers) == {"CC-100", "CC-200"}
    platform = centers["CC-100"]["teams"][0]
    assert platform["team"] == "platform" and platform["requests"] == 3
    cases = {u["use_case"]: (u["requests"], u["cost_usd"]) for u in platform["use_cases"]}
    assert cases["coding"] == (2, "0.0222")
    payments = centers["CC-200"]
    assert payments["requests"] == 2
    mini = Decimal(333) * Decimal("0.15") / 10**6 + Decimal(77) * Decimal("0.6") / 10**6
    assert Decimal(payments["cost_usd"]) == mini + Decimal("0.010500001")


def test_chargeback_table_and_errors(env: tuple[Store, CliRunner, Path]) -> None:
    store, runner, prices = env
    _seed_month(store, prices)
    result = runner.invoke(build_app(), ["chargeback", "--month", "2026-11"])
    assert result.exit_code == 0, result.output
    assert "CC-100" in result.stdout and "platform" in result.stdout and "total" in result.stdout
    bad = runner.invoke(build_app(), ["chargeback", "--month", "Nov"])
    assert bad.exit_code == 1 and "YYYY-MM" in bad.output
    no_file = runner.invoke(build_app(), ["chargeback", "--month", "2026-11", "--format", "focus-parquet"])
    assert no_file.exit_code == 1 and "--output" in no_file.output
    to_file = runner.invoke(build_app(), ["chargeback", "--month", "2026-11", "--output", "x.txt"])
    assert to_file.exit_code == 1 and "--format json" in to_file.output


# --- the forecast ---


def test_project_hand_computed() -> None:
    now = datetime(2026, 11, 11, tzinfo=UTC)  # 10 days in, 20 left of a 30-day month
    left = fc.days_left(now, datetime(2026, 12, 1, tzinfo=UTC))
    assert left == 20
    assert fc.project(1_000 * USD, 7 * 100 * USD, left) == 3_000 * USD
    # half a day left, $70 over the last 7 days: $10/day x 0.5
    assert fc.project(5 * USD, 70 * USD, Fraction(1, 2)) == 10 * USD
    assert fc.run_rate_window(datetime(2026, 11, 11, 15, 30, tzinfo=UTC)) == (
        datetime(2026, 11, 4, tzinfo=UTC),
        datetime(2026, 11, 11, tzinfo=UTC),
    )


def test_projection_against_budget() -> None:
    p = fc.Projection("t1", "platform", 1_000, 100, Fraction(20), 3_000, budget_nanos=2_500, budget_name="b")
    assert p.percent_of_budget == 120 and p.over_by_nanos == 500
    q = fc.Projection("t1", "platform", 1_000, 100, Fraction(20), 3_000, budget_nanos=5_000)
    assert q.percent_of_budget == 60 and q.over_by_nanos == 0
    assert fc.Projection("t", None, 0, 0, Fraction(0), 0).over_by_nanos is None


def _seed_daily(store: Store) -> dict[str, str]:
    teams = {t.name: t for t in store.list_teams()}
    rows = []
    for day in range(1, 11):  # Nov 1..10: platform $100/day, payments $10/day
        rows.append(
            _row(
                day,
                f"2026-11-{day:02d}T12:00:00.000000Z",
                cost_nanos=100 * USD,
                team_id=teams["platform"].id,
                cost_center="CC-100",
            )
        )
        rows.append(
            _row(
                100 + day,
                f"2026-11-{day:02d}T12:00:00.000000Z",
                cost_nanos=10 * USD,
                team_id=teams["payments"].id,
                cost_center="CC-200",
            )
        )
    rows.append(
        _row(
            999,
            "2026-10-31T12:00:00.000000Z",
            cost_nanos=1_000 * USD,
            team_id=teams["platform"].id,
            cost_center="CC-100",
        )
    )
    store.insert_ledger_rows(rows)
    return {name: t.id for name, t in teams.items()}


def test_forecast_cli_by_team(env: tuple[Store, CliRunner, Path]) -> None:
    store, runner, _ = env
    ids = _seed_daily(store)
    store.create_budget(
        name="platform-monthly", scope_type="team", scope_value="platform", amount_nanos=2_500 * USD
    )
    store.create_budget(
        name="payments-weekly", scope_type="team", scope_value="payments", amount_nanos=1 * USD, period="week"
    )
    args = ["forecast", "--month", "2026-11", "--now", "2026-11-11T00:00:00Z", "--format", "json"]
    result = runner.invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    rows = {r["team"]: r for r in json.loads(result.stdout)}
    assert rows["platform"] == {
        "team": "platform",
        "id": ids["platform"],
        "mtd_usd": "1000",
        "run_rate_usd_per_day": "100",
        "days_left": 20.0,
        "projected_usd": "3000",
        "budget": "platform-monthly",
        "budget_usd": "2500",
        "projected_percent_of_budget": 120.0,
        "over_by_usd": "500",
    }
    # a weekly budget is not a monthly one
    assert rows["payments"]["projected_usd"] == "300" and rows["payments"]["budget_usd"] is None
    table = runner.invoke(build_app(), args[:-2])
    assert table.exit_code == 0 and "$3,000.0000" in table.stdout
    assert "last 7 complete UTC days" in table.stdout


def test_forecast_cli_by_cost_center_mid_day(env: tuple[Store, CliRunner, Path]) -> None:
    store, runner, _ = env
    _seed_daily(store)
    store.create_budget(name="cc", scope_type="cost_center", scope_value="CC-200", amount_nanos=400 * USD)
    # Nov 10 noon: MTD counts Nov 1..9 plus nothing yet on the 10th's noon row (exclusive);
    # run-rate = Nov 3..9 / 7; 20.5 days left.
    args = ["forecast", "--by", "cost_center", "--now", "2026-11-10T12:00:00Z", "--format", "json"]
    result = runner.invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    rows = {r["cost_center"]: r for r in json.loads(result.stdout)}
    assert rows["CC-200"]["mtd_usd"] == "90"
    assert rows["CC-200"]["projected_usd"] == "295"  # 90 + 10 x 20.5
    assert rows["CC-200"]["projected_percent_of_budget"] == 73.8
    assert rows["CC-200"]["over_by_usd"] == "0"
    assert rows["CC-100"]["projected_usd"] == "2950"  # 900 + 100 x 20.5
    # a past month: projection is what was spent
    past = runner.invoke(
        build_app(),
        [
            "forecast",
            "--by",
            "cost_center",
            "--month",
            "2026-10",
            "--now",
            "2026-11-10T12:00:00Z",
            "--format",
            "json",
        ],
    )
    assert past.exit_code == 0, past.output
    fields = ["cost_center", "mtd_usd", "run_rate_usd_per_day", "days_left", "projected_usd", "budget_usd"]
    fields += ["projected_percent_of_budget", "over_by_usd"]
    # Oct 25..31: $1000 / 7 a day, but no days left; CC-200 is listed for its budget
    assert [tuple(r[f] for f in fields) for r in json.loads(past.stdout)] == [
        ("CC-100", "1000", "142.857142857", 0.0, "1000", None, None, None),
        ("CC-200", "0", "0", 0.0, "0", "400", 0.0, "0"),
    ]
    future = runner.invoke(build_app(), ["forecast", "--month", "2027-01", "--now", "2026-11-10T12:00:00Z"])
    assert future.exit_code == 1


def test_chargeback_rows_query(database_url: str) -> None:
    store = open_store(database_url)
    store.migrate()
    org = store.create_org("acme")
    team = store.create_team(org.id, "platform", "CC-1")
    store.insert_ledger_rows(
        [
            _row(1, "2026-11-01T00:00:00.000000Z", team_id=team.id, org_id=org.id, cost_nanos=5),
            _row(2, "2026-12-01T00:00:00.000000Z", team_id=team.id, org_id=org.id, cost_nanos=7),
            _row(3, "2026-11-05T00:00:00.000000Z", team_id="gone", cost_nanos=9),
        ]
    )
    rows = store.chargeback_rows("2026-11-01T00:00:00.000000Z", "2026-12-01T00:00:00.000000Z")
    assert [(r["day"], r["team_name"], r["org_name"], r["requests"], r["cost_nanos"]) for r in rows] == [
        ("2026-11-01", "platform", "acme", 1, 5),
        ("2026-11-05", "gone", None, 1, 9),
    ]
    store.close()
