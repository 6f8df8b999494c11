"""Prometheus metrics through a real gateway, and the shipped Prometheus/Grafana files."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from spendgate import metrics as metrics_module
from spendgate.app import create_app
from spendgate.budgets.counters import Charge, LocalCounters
from spendgate.fake_upstream import FakeUpstream
from spendgate.models import LedgerRow
from spendgate.servethread import ServerThread
from tests.conftest import RunningGateway, gateway_settings
from tests.test_anthropic_proxy import EXACT_USAGE, SONNET_EXACT_NANOS, ask, client

ROOT = Path(__file__).resolve().parent.parent
OPS = ROOT / "ops"
PROMTOOL_ENV = "SPENDGATE_TEST_PROMTOOL"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
CALL = {"team": "platform", "use_case": "chat", "model": "claude-sonnet-4-6", "provider": "anthropic"}


def scrape_text(url: str, token: str | None = None) -> str:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def scrape(gateway: RunningGateway) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(scrape_text(gateway.url))
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def wait_for(gateway: RunningGateway, check: str, **labels: str) -> Samples:
    """Scrape until a sample appears (budget settles run just after the response)."""
    for _ in range(100):
        samples = scrape(gateway)
        if (check, frozenset(labels.items())) in samples:
            return samples
        time.sleep(0.02)
    raise AssertionError(f"{check}{labels} never appeared")


def test_a_call_is_counted_exactly(gateway: RunningGateway) -> None:
    ask(client(gateway, **{"x-spendgate-tags": "use_case=warm-up"}))  # first call resolves the price
    before = scrape(gateway)
    c = client(gateway, **{"x-fake-usage": json.dumps(EXACT_USAGE), "x-fake-latency-ms": "150"})
    ask(c)
    samples = scrape(gateway)
    assert value(samples, "spendgate_cost_usd_total", **CALL) == pytest.approx(SONNET_EXACT_NANOS / 1e9)
    assert value(samples, "spendgate_cost_usd_total", **CALL) == pytest.approx(0.0372)
    tokens = {t: value(samples, "spendgate_tokens_total", **CALL, type=t) for t in metrics_module.TOKEN_TYPES}
    assert tokens == {
        "input": 1000,
        "cache_write_5m": 2000,
        "cache_write_1h": 3000,
        "cache_read": 4000,
        "output": 500,
    }
    assert value(samples, "spendgate_requests_total", **CALL, status="ok") == 1

    def delta(name: str, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    duration = delta("spendgate_request_duration_seconds_sum", provider="anthropic", streamed="false")
    overhead = delta("spendgate_gateway_overhead_seconds_sum", provider="anthropic")
    assert delta("spendgate_gateway_overhead_seconds_count", provider="anthropic") == 1
    # the fake provider took 150 ms: that is upstream time, not the gateway's
    assert duration >= 0.15 and overhead < 0.05 and overhead < duration
    assert value(samples, "spendgate_ledger_queue_depth") >= 0
    gateway.rows()  # the writer has caught up
    samples = scrape(gateway)
    assert value(samples, "spendgate_ledger_rows_written_total") == 2
    assert value(samples, "spendgate_ledger_write_lag_seconds") >= 0
    assert value(samples, "spendgate_reservations_in_flight") == 0


def test_statuses_streams_and_no_identity_labels(gateway: RunningGateway) -> None:
    with pytest.raises(Exception, match="400"):
        ask(client(gateway, **{"x-fake-mode": "error-400"}))
    tagged = client(gateway, **{"x-spendgate-tags": "use_case=code-review"})
    with tagged.messages.stream(
        model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        stream.get_final_message()
    samples = scrape(gateway)
    assert value(samples, "spendgate_requests_total", **CALL, status="upstream_error") == 1
    assert value(samples, "spendgate_cost_usd_total", **CALL) == 0  # an error costs nothing
    # the model label is the model billed: the default policy routes code review to Sonnet
    streamed = {**CALL, "use_case": "code-review", "model": "claude-sonnet-4-6"}
    assert value(samples, "spendgate_requests_total", **streamed, status="ok") == 1
    assert value(samples, "spendgate_cost_usd_total", **streamed) > 0
    assert (
        value(samples, "spendgate_request_duration_seconds_count", provider="anthropic", streamed="true") == 1
    )
    secret_values = {gateway.user_id, gateway.key_id, gateway.key, gateway.team_id, "ada", "ada-laptop"}
    label_values = {v for _, labels in samples for _, v in labels}
    assert not secret_values & label_values
    label_names = {k for _, labels in samples for k, _ in labels}
    assert not {"user", "user_id", "key", "key_id", "email"} & label_names


def test_budget_gauges_read_the_counters_and_the_ledger(gateway: RunningGateway) -> None:
    gw = gateway.gw
    gw.store.create_budget(
        name="platform-daily",
        scope_type="team",
        scope_value=gateway.team_id,
        amount_nanos=1_000_000_000,
        period="day",
    )
    gw.budgets.reload()
    ask(client(gateway, **{"x-fake-usage": json.dumps(EXACT_USAGE)}))
    labels = {"budget": "platform-daily", "scope": "team"}
    for _ in range(100):  # the settle runs just after the response
        samples = scrape(gateway)
        if value(samples, "spendgate_budget_utilization_ratio", **labels) > 0:
            break
        time.sleep(0.02)
    assert value(samples, "spendgate_budget_utilization_ratio", **labels) == pytest.approx(0.0372)
    # hard limit 150% of $1, minus the spend
    assert value(samples, "spendgate_budget_remaining_usd", **labels) == pytest.approx(1.5 - 0.0372)
    tiers = {
        t: value(samples, "spendgate_budget_tier_ratio", **labels, tier=t) for t in ("alert", "amber", "hard")
    }
    assert tiers == {"alert": 0.8, "amber": 1.1, "hard": 1.5}
    assert value(samples, "spendgate_reservations_in_flight") == 0
    # a budget no call has touched yet (no counter): read from the ledger
    gateway.rows()
    gw.store.create_budget(
        name="chat-weekly",
        scope_type="use_case",
        scope_value="chat",  # the use case inferred for a plain SDK call
        amount_nanos=100_000_000,
        period="week",
    )
    gw.budgets.reload()
    samples = scrape(gateway)
    assert value(
        samples, "spendgate_budget_utilization_ratio", budget="chat-weekly", scope="use_case"
    ) == (pytest.approx(0.372))
    # a blocked call is a status too
    gw.store.create_budget(
        name="tiny", scope_type="team", scope_value=gateway.team_id, amount_nanos=1, period="day"
    )
    gw.budgets.reload()
    with pytest.raises(Exception, match="tiny"):
        ask(client(gateway))
    samples = scrape(gateway)
    assert value(samples, "spendgate_requests_total", **CALL, status="budget_blocked") == 1


def test_metrics_token(tmp_path: Path, fake: FakeUpstream) -> None:
    app = create_app(gateway_settings(tmp_path, fake, metrics_token="scrape-me"))
    with ServerThread(app) as server:
        assert httpx.get(f"{server.url}/metrics").status_code == 401
        bad = httpx.get(f"{server.url}/metrics", headers={"authorization": "Bearer nope"})
        assert bad.status_code == 401
        assert "spendgate_requests_total" in scrape_text(server.url, "scrape-me")


def test_alert_deliveries_and_label_cap(gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    m = gateway.gw.metrics
    m.alert_delivered("slack", True)
    m.alert_delivered("slack", False)
    m.alert_delivered("slack", False)
    monkeypatch.setattr(metrics_module, "MAX_LABEL_SETS", 1)
    for use_case in ("a", "b", "c"):
        row = LedgerRow(
            request_id="r",
            provider="anthropic",
            endpoint="/v1/messages",
            started_at="",
            ended_at="",
            status_code=200,
            status="ok",
            use_case=use_case,
            upstream_model="m",
        )
        m.observe_call(row, "t", 0.01, None)
    samples = scrape(gateway)
    assert value(samples, "spendgate_alert_deliveries_total", channel="slack", outcome="ok") == 1
    assert value(samples, "spendgate_alert_deliveries_total", channel="slack", outcome="failed") == 2
    by_use_case = {
        dict(labels)["use_case"]: v
        for (name, labels), v in samples.items()
        if name == "spendgate_requests_total" and dict(labels)["team"] == "t"
    }
    assert by_use_case == {"a": 1, metrics_module.OVERFLOW: 2}


def test_local_counter_snapshot() -> None:
    async def scenario() -> None:
        c = LocalCounters()
        await c.seed("b:x:2026", 5, 3600)
        assert (await c.reserve("r1", [Charge("b:x:2026", 100, True, 3600)], 7, 60)).ok
        assert await c.snapshot(["b:x:2026", "b:missing"]) == [(5, 7), None]
        assert await c.reservations_in_flight() == 1
        await c.settle("r1", 3)
        assert await c.snapshot(["b:x:2026"]) == [(8, 0)]
        assert await c.reservations_in_flight() == 0

    asyncio.run(scenario())


def test_redis_counter_snapshot(redis_url: tuple[str, str]) -> None:
    from spendgate.budgets.redis_counters import RedisCounters

    async def scenario() -> None:
        c = RedisCounters(redis_url[0], redis_url[1])
        try:
            assert await c.snapshot([]) == []
            await c.seed("b:x:2026", 5, 3600)
            assert (await c.reserve("r1", [Charge("b:x:2026", 100, True, 3600)], 7, 60)).ok
            assert await c.snapshot(["b:x:2026", "b:missing"]) == [(5, 7), None]
            assert await c.reservations_in_flight() == 1
            await c.settle("r1", 3)
            assert await c.snapshot(["b:x:2026"]) == [(8, 0)]
            assert await c.reservations_in_flight() == 0
        finally:
            await c.close()

    asyncio.run(scenario())


# --- the shipped operations files -----------------------------------------------------------------
def _referenced_metrics() -> dict[str, set[str]]:
    dashboard = json.loads((OPS / "grafana" / "dashboards" / "spendgate.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs.append(json.dumps(dashboard["templating"]))
    assert len(exprs) >= 15
    rules = (OPS / "prometheus" / "alerts.yml").read_text()
    pattern = re.compile(r"spendgate_[a-z_]+")
    return {
        "dashboard": {n for e in exprs for n in pattern.findall(e)},
        "alerts": set(pattern.findall(rules)),
    }


def test_every_metric_in_the_dashboard_and_rules_exists(gateway: RunningGateway) -> None:
    families = list(text_string_to_metric_families(scrape_text(gateway.url)))
    exposed: set[str] = set()
    for family in families:
        exposed.add(family.name)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [])
        exposed.update(family.name + s for s in suffixes)
    referenced = _referenced_metrics()
    assert referenced["dashboard"] and referenced["alerts"]
    for where, names in referenced.items():
        assert not names - exposed, f"{where} names metrics Spendgate does not expose: {names - exposed}"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get(PROMTOOL_ENV) == "1":
        pytest.fail(f"{PROMTOOL_ENV}=1 but promtool is not on PATH (apt-get install prometheus)")
    pytest.skip(f"promtool not on PATH (Debian package 'prometheus'); CI sets {PROMTOOL_ENV}=1")


def _run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_checks_rules_and_config() -> None:
    promtool = _promtool()
    _run(promtool, "check", "rules", str(OPS / "prometheus" / "alerts.yml"))
    _run(promtool, "check", "config", str(OPS / "prometheus" / "prometheus.yml"))


SPIKE_TEST = """
rule_files: [{rules}]
evaluation_interval: 1h
tests:
  - interval: 1h
    input_series:
      # steady: $1/hour for 8 days, then $4/hour on the last day (4x): fires
      - series: 'spendgate_cost_usd_total{{team="steady", instance="a"}}'
        values: '0+1x191 192+4x24'
      # same growth at 2x: under the 3x threshold, stays quiet
      - series: 'spendgate_cost_usd_total{{team="calm", instance="a"}}'
        values: '0+1x191 192+2x24'
    alert_rule_test:
      - eval_time: 215h
        alertname: SpendgateTeamSpendSpike
        exp_alerts:
          - exp_labels: {{severity: page, team: steady}}
"""


def _without_annotations(rules: str) -> str:
    """The rules with their annotation blocks dropped, so a unit test compares labels only."""
    out: list[str] = []
    skip_deeper_than: int | None = None
    for line in rules.splitlines():
        indent = len(line) - len(line.lstrip())
        if skip_deeper_than is not None and (not line.strip() or indent > skip_deeper_than):
            continue
        skip_deeper_than = indent if line.strip() == "annotations:" else None
        if skip_deeper_than is None:
            out.append(line)
    return "\n".join(out) + "\n"


TIERS_TEST = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # default tiers (0.8 / 1.1 / 1.5) at 0.9: the alert tier
      - series: 'spendgate_budget_utilization_ratio{{budget="std", scope="team", instance="a"}}'
        values: '0.9x10'
      - series: 'spendgate_budget_tier_ratio{{budget="std", scope="team", tier="alert", instance="a"}}'
        values: '0.8x10'
      - series: 'spendgate_budget_tier_ratio{{budget="std", scope="team", tier="amber", instance="a"}}'
        values: '1.1x10'
      - series: 'spendgate_budget_tier_ratio{{budget="std", scope="team", tier="hard", instance="a"}}'
        values: '1.5x10'
      # custom tiers 0.5 / 0.7 / 1.0 at 0.9: amber (the constants 0.8 / 1.1 would call it alert)
      - series: 'spendgate_budget_utilization_ratio{{budget="tight", scope="tag", instance="a"}}'
        values: '0.9x10'
      - series: 'spendgate_budget_tier_ratio{{budget="tight", scope="tag", tier="alert", instance="a"}}'
        values: '0.5x10'
      - series: 'spendgate_budget_tier_ratio{{budget="tight", scope="tag", tier="amber", instance="a"}}'
        values: '0.7x10'
      - series: 'spendgate_budget_tier_ratio{{budget="tight", scope="tag", tier="hard", instance="a"}}'
        values: '1.0x10'
      # custom hard limit at 1.2, reached at 1.25 (the constant 1.5 would not page)
      - series: 'spendgate_budget_utilization_ratio{{budget="low-cap", scope="user", instance="a"}}'
        values: '1.25x10'
      - series: 'spendgate_budget_tier_ratio{{budget="low-cap", scope="user", tier="alert", instance="a"}}'
        values: '0.8x10'
      - series: 'spendgate_budget_tier_ratio{{budget="low-cap", scope="user", tier="hard", instance="a"}}'
        values: '1.2x10'
    alert_rule_test:
      - eval_time: 9m
        alertname: SpendgateBudgetAlertTier
        exp_alerts:
          - exp_labels: {{severity: warning, budget: std, scope: team}}
      - eval_time: 9m
        alertname: SpendgateBudgetAmberTier
        exp_alerts:
          - exp_labels: {{severity: critical, budget: tight, scope: tag}}
      - eval_time: 9m
        alertname: SpendgateBudgetHardLimit
        exp_alerts:
          - exp_labels: {{severity: page, budget: low-cap, scope: user}}
"""


def test_budget_tier_rules_follow_each_budgets_tiers(tmp_path: Path) -> None:
    promtool = _promtool()
    rules = tmp_path / "alerts.yml"
    rules.write_text(_without_annotations((OPS / "prometheus" / "alerts.yml").read_text()))
    test_file = tmp_path / "tiers_test.yml"
    test_file.write_text(TIERS_TEST.format(rules=rules))
    _run(promtool, "test", "rules", str(test_file))


def test_spike_rule_fires_at_3x_not_2x(tmp_path: Path) -> None:
    promtool = _promtool()
    rules = tmp_path / "alerts.yml"
    rules.write_text(_without_annotations((OPS / "prometheus" / "alerts.yml").read_text()))
    test_file = tmp_path / "spike_test.yml"
    test_file.write_text(SPIKE_TEST.format(rules=rules))
    _run(promtool, "test", "rules", str(test_file))
