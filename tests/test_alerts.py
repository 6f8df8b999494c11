"""Anomaly detection and alert delivery, end to end on a temp SQLite ledger with synthetic histories,
delivering to real receivers on 127.0.0.1 (Slack, PagerDuty and webhook over HTTP; email over SMTP)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import socket
import threading
import time as clock
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from spendgate.alerts.backtest import replay
from spendgate.alerts.channels import ID_HEADER, REPLAY_WINDOW_S, TIMESTAMP_HEADER, verify
from spendgate.alerts.config import AlertsConfig, DetectParams, parse_alerts_config
from spendgate.alerts.deliver import Deliverer
from spendgate.alerts.detector import assess
from spendgate.alerts.scheduler import PassResult, check_once, plan, run_alerts_forever
from spendgate.budgets.model import BudgetEvent
from spendgate.cli import build_app
from spendgate.config import Settings
from spendgate.models import LedgerRow
from spendgate.servethread import ServerThread
from spendgate.store import Store, open_store
from tests.mailbox import Mailbox
from tests.tables import table_rows

USD = 1_000_000_000
TODAY = date(2026, 11, 24)  # a Tuesday
MONDAY = date(2026, 11, 23)
HOURS = (9, 10, 11, 12, 13)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


@dataclass
class Ledger:
    store: Store
    ids: Iterator[int] = field(default_factory=itertools.count)

    def call(self, when: datetime, team: str, usd: float, **attrs: Any) -> LedgerRow:
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        values: dict[str, Any] = {
            "key_id": f"{team}-key",
            "user_id": f"{team}-user",
            "use_case": "code-review",
            "upstream_model": "claude-sonnet-4-6",
            "session_id": f"s-{when:%Y%m%d}-{team}",
        }
        values.update(attrs)
        return LedgerRow(
            request_id=f"req-{next(self.ids)}",
            provider="anthropic",
            endpoint="/v1/messages",
            started_at=stamp,
            ended_at=stamp,
            status_code=200,
            status="ok",
            team_id=team,
            cost_nanos=round(usd * USD),
            **values,
        )

    def day(self, day: date, team: str, usd: float, hours: tuple[int, ...] = HOURS, **attrs: Any) -> None:
        """`usd` spread evenly over calls at HH:10 of the given hours."""
        self.store.insert_ledger_rows(
            [self.call(at(day, h, 10), team, usd / len(hours), **attrs) for h in hours]
        )

    def history(
        self, team: str, end: date, days: int, weekday_usd: float, weekend_usd: float | None = None
    ) -> None:
        """`days` days before `end` (exclusive): two users, two use cases, weekends quieter."""
        for n in range(1, days + 1):
            day = end - timedelta(days=n)
            usd = weekday_usd if day.weekday() < 5 or weekend_usd is None else weekend_usd
            if usd:
                self.day(day, team, usd / 2)
                self.day(day, team, usd / 2, user_id=f"{team}-user2", key_id=f"{team}-key2", use_case="chat")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    store = open_store(f"sqlite:///{tmp_path}/a.db")
    store.migrate()
    yield Ledger(store)
    store.close()


def quiet_config(**detect: Any) -> AlertsConfig:
    return parse_alerts_config({"detect": {"timezone": "UTC", **detect}})


def run_pass(store: Store, config: AlertsConfig, now: datetime, **retry: Any) -> PassResult:
    async def go() -> PassResult:
        async with Deliverer(store, **{"attempts": 4, "base_delay_s": 0.01, **retry}) as deliverer:
            result = await check_once(store, config, deliverer, now)
            await deliverer.drain(10)
        return result

    return asyncio.run(go())


# --- receivers on loopback ---
@dataclass
class Receiver:
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_first: dict[str, int] = field(default_factory=dict)  # path -> failures before success
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            body = await request.body()
            path = request.url.path
            with self.lock:
                self.requests.append({"path": path, "headers": dict(request.headers), "body": body})
                if self.fail_first.get(path, 0) > 0:
                    self.fail_first[path] -= 1
                    return PlainTextResponse("boom", status_code=500)
            if path == "/pd":
                payload = json.loads(body)
                return JSONResponse(
                    {"status": "success", "message": "Event processed", "dedup_key": payload["dedup_key"]},
                    202,
                )
            return PlainTextResponse("ok")

        return Starlette(routes=[Route("/{path:path}", handle, methods=["POST"])])

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests if r["path"] == path]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    with ServerThread(rec.app(), lifespan="off") as server:
        yield rec, server.url


def channels_config(url: str, smtp_port: int | None = None, **detect: Any) -> AlertsConfig:
    channels: dict[str, Any] = {
        "slack": {"type": "slack", "url": f"{url}/slack"},
        "pd": {"type": "pagerduty", "routing_key": "R" * 32, "url": f"{url}/pd"},
        "hook": {"type": "webhook", "url": f"{url}/hook", "secret": "s3cret"},
    }
    routes: dict[str, Any] = {"default": ["hook"], "platform": ["slack", "pd", "hook"]}
    if smtp_port is not None:
        channels["mail"] = {
            "type": "email",
            "host": "127.0.0.1",
            "port": smtp_port,
            "from": "spendgate@example.com",
            "to": ["lead@example.com"],
        }
        routes["platform"].append("mail")
    return parse_alerts_config(
        {"detect": {"timezone": "UTC", **detect}, "channels": channels, "routes": routes}
    )


# --- the detector on synthetic histories ---
def test_quiet_history_and_weekend_lull_do_not_alert(ledger: Ledger) -> None:
    ledger.history("platform", TODAY, 60, weekday_usd=100, weekend_usd=0)
    ledger.history("tiny", TODAY, 60, weekday_usd=0.5)  # a tiny team: its 10x day is still tiny
    ledger.day(MONDAY, "tiny", 5)
    config = quiet_config()
    # Monday after a weekend of nothing: the 7-day average is 5/7 of a weekday, the ratio ~1.4.
    for hour in (11, 16, 20):
        assert plan(ledger.store, config, at(MONDAY, hour)) == []
    assert ledger.store.list_alerts() == []
    # ...and nowhere in the 50 days replayed at 3x (the weekday-only team's Mondays included).
    from spendgate.alerts.backtest import backtest

    rows = backtest(ledger.store, config.detect, [3.0], TODAY - timedelta(days=50), TODAY)
    assert rows and all(r["alerts_at_3x"] == 0 for r in rows)


def test_new_agent_workflow_fires_at_the_check_time_naming_the_use_case(ledger: Ledger) -> None:
    ledger.history("platform", TODAY, 60, weekday_usd=100, weekend_usd=4)
    ledger.history("data", TODAY, 60, weekday_usd=50, weekend_usd=50)
    ledger.day(TODAY, "platform", 50)
    ledger.day(TODAY, "platform", 50, user_id="platform-user2", key_id="platform-key2", use_case="chat")
    # A new agent workflow shipped this morning, under the usual key: ~5x the baseline in total.
    ledger.day(
        TODAY,
        "platform",
        280,
        hours=(9, 10, 11),
        use_case="autonomous-agent",
        upstream_model="claude-opus-4-6",
        session_id="agent-run-1",
    )
    ledger.day(TODAY, "data", 55)
    config = quiet_config()
    assert plan(ledger.store, config, at(TODAY, 15, 30)) == []  # before 16:00, and no burn right now
    out = plan(ledger.store, config, at(TODAY, 16, 5))
    assert len(out) == 1
    msg, channels = out[0]
    assert channels == []  # no channels configured: recorded only
    details = msg.details
    assert details["group"] == "platform" and details["reason"] == "daily"
    assert details["baseline_usd"] == pytest.approx((5 * 100 + 2 * 4) / 7, abs=0.01)
    assert details["ratio"] == pytest.approx(380 / ((5 * 100 + 2 * 4) / 7), abs=0.01)
    assert details["top_contributor"] == {"dimension": "use_case", "value": "autonomous-agent"}
    assert details["contributors"]["use_case"][0]["baseline_usd"] == 0
    assert details["contributors"]["model"][0]["value"] == "claude-opus-4-6"
    assert "use_case autonomous-agent" in msg.summary
    assert msg.command == "spendgate alerts detail --by team --value platform --day 2026-11-24"
    assert msg.dedup_key == "spendgate:platform:2026-11-24"
    # One alert per team per day: a later pass does not open another.
    assert plan(ledger.store, config, at(TODAY, 18)) == []
    assert [a.alert_key for a in ledger.store.list_alerts()] == ["anomaly:team:platform:2026-11-24"]


def test_ci_loop_on_every_push_names_the_key(ledger: Ledger) -> None:
    ledger.history("platform", TODAY, 60, weekday_usd=100, weekend_usd=4)
    for n in range(1, 61):  # the CI key's usual few dollars a day
        ledger.day(TODAY - timedelta(days=n), "platform", 5, hours=(12,), key_id="ci-bot", user_id=None)
    ledger.day(TODAY, "platform", 100)
    # CI now triggers an agent on every push: 200 small calls from one key, each its own session.
    rows = [
        ledger.call(
            at(TODAY, 8) + timedelta(minutes=2 * i),
            "platform",
            1.5,
            key_id="ci-bot",
            user_id=None,
            session_id=f"ci-{i}",
        )
        for i in range(200)
    ]
    ledger.store.insert_ledger_rows(rows)
    out = plan(ledger.store, quiet_config(), at(TODAY, 16, 30))
    assert len(out) == 1
    details = out[0][0].details
    assert details["top_contributor"] == {"dimension": "key", "value": "ci-bot"}
    assert details["contributors"]["key"][0]["increase_usd"] == pytest.approx(
        295
    )  # $300 today vs its $5 a day


def test_one_off_batch_job_is_caught_by_the_burn_rate_before_the_check_time(ledger: Ledger) -> None:
    ledger.history("platform", TODAY, 60, weekday_usd=100, weekend_usd=100)
    ledger.day(TODAY, "platform", 40, hours=(8, 9))
    ledger.day(
        TODAY,
        "platform",
        1200,
        hours=(10, 11),
        use_case="batch-summarize",
        key_id="batch",
        session_id="batch-1",
    )  # $1,200 in two hours
    out = plan(ledger.store, quiet_config(), at(TODAY, 12, 0))
    assert len(out) == 1
    msg = out[0][0]
    assert msg.details["reason"] == "burn" and msg.severity == "critical"
    assert msg.details["burn_usd"] == pytest.approx(1200)
    assert msg.details["top_contributor"]["value"] in ("batch-summarize", "batch")
    assert msg.title.startswith("Runaway spend")


def test_a_team_with_no_history_alerts_only_over_the_absolute_floor(ledger: Ledger) -> None:
    ledger.day(TODAY - timedelta(days=1), "newbies", 10)
    ledger.day(TODAY, "newbies", 90)
    config = quiet_config(new_floor_usd=150)
    assert plan(ledger.store, config, at(TODAY, 17)) == []  # 9x yesterday, but under the floor
    ledger.day(TODAY, "newbies", 70, hours=(14,))
    out = plan(ledger.store, config, at(TODAY, 17))
    assert len(out) == 1
    msg = out[0][0]
    assert msg.details["reason"] == "new_floor" and msg.details["new_group"] is True
    assert "no baseline" in msg.summary and "absolute floor of $150.00" in msg.summary


def test_detector_pure_rules() -> None:
    params = DetectParams()
    series = {TODAY - timedelta(days=n): 100 * USD for n in range(1, 8)}
    assert assess(series, TODAY, 299 * USD, params, at_check_time=True).fire is None
    assert assess(series, TODAY, 300 * USD, params, at_check_time=True).fire == "daily"
    assert assess(series, TODAY, 300 * USD, params, at_check_time=False).fire is None
    assert assess(series, TODAY, 50 * USD, params, at_check_time=False, burn_nanos=100 * USD).fire == "burn"
    # Tiny teams: the baseline never counts below $5 and nothing alerts under $20 spent.
    tiny = {TODAY - timedelta(days=n): USD // 10 for n in range(1, 8)}
    assert assess(tiny, TODAY, 19 * USD, params, at_check_time=True).fire is None
    # Same weekday over the last 4 weeks: a Tuesday compared with Tuesdays only.
    weekly = DetectParams(same_weekday_weeks=4)
    tuesdays = {TODAY - timedelta(weeks=n): 200 * USD for n in range(1, 5)}
    found = assess(tuesdays, TODAY, 500 * USD, weekly, at_check_time=True)
    assert found.fire is None and found.ratio == pytest.approx(2.5)


# --- delivery ---
def test_delivery_payloads_to_slack_pagerduty_webhook_and_email(
    ledger: Ledger, receiver: tuple[Receiver, str], smtp: tuple[Mailbox, int]
) -> None:
    rec, url = receiver
    box, port = smtp
    ledger.history("platform", TODAY, 30, weekday_usd=100, weekend_usd=100)
    ledger.history("data", TODAY, 30, weekday_usd=100, weekend_usd=100)
    ledger.day(TODAY, "platform", 400, use_case="autonomous-agent")
    ledger.day(TODAY, "data", 350)
    result = run_pass(ledger.store, channels_config(url, port), at(TODAY, 16, 1))
    assert len(result.triggered) == 2 and result.deliveries == 5  # platform: 4 channels; data: default
    slack = rec.bodies("/slack")
    assert len(slack) == 1
    assert slack[0]["text"].startswith(
        "team platform: $400.00 today by 16:01 UTC vs an average of $100.00/day"
    )
    assert [b["type"] for b in slack[0]["blocks"]] == ["header", "section", "section", "context"]
    assert slack[0]["blocks"][0]["text"]["text"] == "Spend anomaly: team platform at 4.0x its baseline"
    assert (
        "spendgate alerts detail --by team --value platform" in slack[0]["blocks"][3]["elements"][0]["text"]
    )
    (pd,) = rec.bodies("/pd")
    assert pd["routing_key"] == "R" * 32 and pd["event_action"] == "trigger"
    assert pd["dedup_key"] == "spendgate:platform:2026-11-24"
    assert pd["payload"]["severity"] == "error" and pd["payload"]["source"] == "spendgate"
    assert pd["payload"]["class"] == "anomaly" and pd["payload"]["component"] == "team:platform"
    assert pd["payload"]["custom_details"]["ratio"] == 4.0
    assert pd["payload"]["custom_details"]["top_contributor"] == {
        "dimension": "use_case",
        "value": "autonomous-agent",
    }
    hooks = [r for r in rec.requests if r["path"] == "/hook"]
    assert len(hooks) == 2
    for hook in hooks:
        headers, raw = hook["headers"], hook["body"]
        assert verify("s3cret", headers, raw)
        assert not verify("wrong", headers, raw)
        # Standard Webhooks: id, timestamp and body are all signed; a replay later is refused.
        assert not verify("s3cret", {**headers, ID_HEADER: "msg_other"}, raw)
        # Another timestamp than the signed one (now less a second was the signed one whenever the
        # delivery fell in the second before this check).
        moved = str(int(headers[TIMESTAMP_HEADER]) - 1)
        assert not verify("s3cret", {**headers, TIMESTAMP_HEADER: moved}, raw)
        assert not verify("s3cret", headers, raw, now=clock.time() + REPLAY_WINDOW_S + 5)
        # The scheme's reference implementation accepts it too (a whsec_ secret is its raw bytes).
        from standardwebhooks.webhooks import Webhook

        secret = "whsec_" + base64.b64encode(b"s3cret").decode()
        assert Webhook(secret).verify(raw, headers)["event"] == "alert.triggered"
    events = sorted((json.loads(h["body"]) for h in hooks), key=lambda b: b["alert"]["group"])
    assert [e["alert"]["group"] for e in events] == ["team:data", "team:platform"]
    assert events[0]["event"] == "alert.triggered" and events[0]["alert"]["status"] == "firing"
    assert events[0]["alert"]["details"]["ratio"] == 3.5
    (mail,) = box.messages
    assert mail.rcpt_tos == ["lead@example.com"]
    text = mail.content.decode()
    assert "Subject: Spend anomaly: team platform at 4.0x its baseline" in text
    assert "Detail: spendgate alerts detail --by team --value platform --day 2026-11-24" in text
    delivered = ledger.store.list_alert_deliveries()
    assert len(delivered) == 5 and {d.status for d in delivered} == {"delivered"}


def test_pagerduty_resolve_when_the_condition_clears(ledger: Ledger, receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    ledger.history("platform", TODAY, 30, weekday_usd=100, weekend_usd=100)
    ledger.day(TODAY, "platform", 100)  # $20 at HH:10, 9..13
    ledger.day(TODAY, "platform", 120, hours=(10,), use_case="runaway")  # 10:10
    config = channels_config(url)
    first = run_pass(ledger.store, config, at(TODAY, 10, 45))  # 2h window: $160 > a $100 day
    assert len(first.triggered) == 1
    assert run_pass(ledger.store, config, at(TODAY, 11, 30)).resolved == []  # still burning
    second = run_pass(ledger.store, config, at(TODAY, 13, 0))  # window $40; day 2.0x < 3x
    assert second.resolved == first.triggered
    trigger, resolve = rec.bodies("/pd")
    assert trigger["event_action"] == "trigger"
    assert resolve == {"routing_key": "R" * 32, "event_action": "resolve", "dedup_key": trigger["dedup_key"]}
    assert rec.bodies("/slack")[1]["text"].startswith("Resolved: team platform: resolved")
    assert rec.bodies("/hook")[1]["event"] == "alert.resolved"
    (alert,) = ledger.store.list_alerts()
    assert alert.status == "resolved" and alert.resolve_note == "spend is back under the threshold"
    # Resolved stays resolved for the day (no flapping pages), and nothing is sent twice.
    assert run_pass(ledger.store, config, at(TODAY, 14, 0)) == PassResult()
    assert len(rec.bodies("/pd")) == 2


def test_alerts_resolve_when_the_day_ends(ledger: Ledger, receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    ledger.history("platform", TODAY, 30, weekday_usd=100, weekend_usd=100)
    ledger.day(TODAY, "platform", 500)
    config = channels_config(url)
    assert len(run_pass(ledger.store, config, at(TODAY, 16)).triggered) == 1
    assert len(run_pass(ledger.store, config, at(TODAY + timedelta(days=1), 0, 5)).resolved) == 1
    assert [b["event_action"] for b in rec.bodies("/pd")] == ["trigger", "resolve"]


def test_failing_receiver_is_retried_with_backoff_and_failures_recorded(
    ledger: Ledger, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    rec.fail_first["/hook"] = 2
    ledger.history("data", TODAY, 30, weekday_usd=100, weekend_usd=100)
    ledger.day(TODAY, "data", 350)
    result = run_pass(ledger.store, channels_config(url), at(TODAY, 16, 1))
    assert len(rec.requests) == 3
    rows = ledger.store.list_alert_deliveries(result.triggered[0])
    assert [(r.attempt, r.status, r.http_status) for r in rows] == [
        (1, "failed", 500),
        (2, "failed", 500),
        (3, "delivered", 200),
    ]
    assert rows[0].error == "HTTP 500: boom"


def test_unreachable_receiver_gives_up_after_the_attempts(ledger: Ledger) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    ledger.history("data", TODAY, 30, weekday_usd=100, weekend_usd=100)
    ledger.day(TODAY, "data", 350)
    run_pass(ledger.store, channels_config(dead), at(TODAY, 16, 1), attempts=3)
    rows = ledger.store.list_alert_deliveries()
    assert [(r.attempt, r.status) for r in rows] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert all("ClientConnectorError" in (r.error or "") for r in rows)


# --- budgets, forecast, replicas, the loop ---
def test_budget_tier_events_and_month_end_forecast_are_delivered_once(
    ledger: Ledger, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    store = ledger.store
    org = store.create_org("acme")
    team = store.create_team(org.name, "platform", "CC-1")
    for n in range(1, 24):  # November 1..23: $100 a day
        ledger.day(TODAY - timedelta(days=n), team.id, 100)
    over = store.create_budget(
        name="platform-monthly",
        scope_type="team",
        scope_value="platform",
        amount_nanos=2800 * USD,
        mode="observe",
    )
    store.create_budget(
        name="platform-roomy", scope_type="team", scope_value="platform", amount_nanos=3500 * USD
    )
    now = at(TODAY, 12)
    store.insert_budget_events(
        [
            BudgetEvent(
                budget_id=over.id,
                period_key="2026-11",
                tier="alert",
                percent=80,
                spend_nanos=2240 * USD,
                limit_nanos=2240 * USD,
                crossed_at="2026-11-24T09:00:00.000000Z",
                observed=True,
            ),
            BudgetEvent(
                budget_id=over.id,
                period_key="2026-10",
                tier="hard",
                percent=150,
                spend_nanos=1 * USD,
                limit_nanos=1 * USD,
                crossed_at="2026-10-20T09:00:00.000000Z",
            ),  # old news: not sent
        ]
    )
    config = channels_config(url)
    result = run_pass(store, config, now)
    kinds = sorted(a.kind for a in store.list_alerts())
    assert kinds == ["budget", "forecast"] and len(result.triggered) == 2
    budget_pd = [b for b in rec.bodies("/pd") if b["payload"]["class"] == "budget"]
    assert budget_pd[0]["dedup_key"] == f"spendgate:budget:{over.id}:2026-11:alert"
    assert budget_pd[0]["payload"]["severity"] == "warning"
    assert "observe mode: nothing was blocked" in budget_pd[0]["payload"]["summary"]
    (fc,) = [b for b in rec.bodies("/hook") if b["alert"]["kind"] == "forecast"]
    details = fc["alert"]["details"]
    # $2,300 so far, $100/day over the last 7 days, 6.5 days left: $2,950 > $2,800 (not > $3,500).
    assert details["budget"] == "platform-monthly"
    assert details["month_to_date_usd"] == 2300 and details["run_rate_usd_per_day"] == 100
    assert details["projected_usd"] == pytest.approx(2950)
    # The next pass sends nothing again.
    sent = len(rec.requests)
    assert run_pass(store, config, at(TODAY, 13)) == PassResult()
    assert len(rec.requests) == sent


def test_replicas_open_each_alert_once(ledger: Ledger, tmp_path: Path) -> None:
    ledger.history("platform", TODAY, 30, weekday_usd=100, weekend_usd=100)
    ledger.day(TODAY, "platform", 500)
    other = open_store(f"sqlite:///{tmp_path}/a.db")
    try:
        config = quiet_config()
        results: list[int] = []
        threads = [
            threading.Thread(target=lambda s=s: results.append(len(plan(s, config, at(TODAY, 16)))))
            for s in (ledger.store, other, ledger.store, other)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [0, 0, 0, 1]
    finally:
        other.close()


def test_run_alerts_forever_runs_passes_until_cancelled(
    ledger: Ledger, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    ledger.history("data", TODAY, 30, weekday_usd=100, weekend_usd=100)
    ledger.day(TODAY, "data", 350)
    settings = Settings(database_url="sqlite:///unused.db", alerts_interval_s=0.01, alerts_retry_base_s=0.01)

    async def go() -> None:
        task = asyncio.create_task(
            run_alerts_forever(
                ledger.store, settings, clock=lambda: at(TODAY, 16, 1), config=channels_config(url)
            )
        )
        for _ in range(500):
            await asyncio.sleep(0.01)
            if rec.requests:
                break
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert len(rec.bodies("/hook")) == 1  # many passes, one alert
    # Without an alerts file the loop is a no-op that returns at once.
    asyncio.run(asyncio.wait_for(run_alerts_forever(ledger.store, settings), 1))


def test_backtest_counts_alerts_per_threshold_and_month() -> None:
    params = DetectParams()
    start = date(2026, 9, 1)
    spikes = {date(2026, 9, 21): 250, date(2026, 10, 10): 400, date(2026, 10, 20): 350}
    full = {"platform": {start + timedelta(days=n): 100 * USD for n in range(60)}}
    for day, usd in spikes.items():
        full["platform"][day] = usd * USD
    rows = replay(full, full, date(2026, 9, 8), date(2026, 10, 31), [2.0, 3.0], params)
    assert [(r["month"], r["alerts_at_2x"], r["alerts_at_3x"]) for r in rows] == [
        ("2026-09", 1, 0),
        ("2026-10", 2, 2),
    ]
    assert rows[1]["days_alerts_at_3x"] == ["2026-10-10", "2026-10-20"]


# --- the CLI ---
@dataclass
class AlertCli:
    runner: CliRunner
    app: typer.Typer
    receiver: Receiver

    def ok(self, *args: str) -> str:
        result = self.runner.invoke(self.app, list(args))
        assert result.exit_code == 0, result.output
        return result.stdout


@pytest.fixture
def alert_cli(ledger: Ledger, receiver: tuple[Receiver, str], tmp_path: Path) -> AlertCli:
    """60 days of platform spend with spikes on 2026-09-21, 10-10 and 10-20, and a webhook channel."""
    rec, url = receiver
    start = date(2026, 9, 1)
    for n in range(60):
        day = start + timedelta(days=n)
        usd = {date(2026, 9, 21): 250, date(2026, 10, 10): 400, date(2026, 10, 20): 350}.get(day, 100)
        ledger.day(day, "platform", usd, hours=(10,))
    ledger.day(date(2026, 10, 20), "platform", 0.01, hours=(10,), use_case="big-batch")
    alerts_file = tmp_path / "alerts.toml"
    alerts_file.write_text(
        '[detect]\ntimezone = "UTC"\ncheck_time = "16:00"\nthreshold = 3\n\n'
        f'[channels.hook]\ntype = "webhook"\nurl = "{url}/hook"\nsecret = "env:TEST_HOOK_SECRET"\n\n'
        '[routes]\ndefault = ["hook"]\n'
    )
    runner = CliRunner(
        env={
            "SPENDGATE_DATABASE_URL": f"sqlite:///{tmp_path}/a.db",
            "SPENDGATE_ALERTS_FILE": str(alerts_file),
            "SPENDGATE_ALERTS_RETRY_BASE_S": "0.01",
            "TEST_HOOK_SECRET": "from-env",
        }
    )
    return AlertCli(runner, build_app(), rec)


def test_cli_check_table_shows_each_value_under_its_heading(alert_cli: AlertCli) -> None:
    (header, *rows) = table_rows(alert_cli.ok("alerts", "check", "--now", "2026-10-20T16:30:00Z"))
    (row,) = rows
    cell = dict(zip(header, row, strict=True))
    assert cell["delivered"] == "1"
    assert cell["summary"].startswith("team platform: $350.01 today") and "3.5x" in cell["summary"]


def test_cli_check_list_detail_and_backtest(alert_cli: AlertCli, tmp_path: Path) -> None:
    ok, runner, app, rec = alert_cli.ok, alert_cli.runner, alert_cli.app, alert_cli.receiver

    backtest = json.loads(
        ok(
            "anomalies",
            "backtest",
            "--thresholds",
            "2,3",
            "--since",
            "2026-09-08",
            "--until",
            "2026-10-31",
            "--format",
            "json",
        )
    )
    assert [(r["month"], r["alerts_at_2x"], r["alerts_at_3x"]) for r in backtest] == [
        ("2026-09", 1, 0),
        ("2026-10", 2, 2),
    ]
    assert "alerts at 3x" in ok("anomalies", "backtest", "--since", "2026-09-08", "--until", "2026-10-31")
    checked = json.loads(ok("alerts", "check", "--now", "2026-10-20T16:30:00Z", "--format", "json"))
    assert [(c["action"], c["group"], c["delivered"]) for c in checked] == [("opened", "team:platform", 1)]
    (hook,) = rec.requests
    assert verify("from-env", hook["headers"], hook["body"])
    listed = json.loads(ok("alerts", "list", "--status", "open", "--format", "json"))
    assert listed[0]["alert_key"] == "anomaly:team:platform:2026-10-20"
    assert "platform" in ok("alerts", "list")
    detail = json.loads(
        ok("alerts", "detail", "--value", "platform", "--day", "2026-10-20", "--format", "json")
    )
    assert detail["ratio"] == 3.5 and detail["would_fire"] == "daily"
    assert detail["contributors"]["use_case"][0].startswith("use_case code-review: $350.00 today")
    assert "Top contributors" in ok("alerts", "detail", "--value", "platform", "--day", "2026-10-20")
    deliveries = json.loads(ok("alerts", "deliveries", "--format", "json"))
    assert deliveries[0]["status"] == "delivered" and deliveries[0]["channel"] == "hook"
    bad = runner.invoke(
        app, ["alerts", "check"], env={"SPENDGATE_ALERTS_FILE": str(tmp_path / "missing.toml")}
    )
    assert bad.exit_code == 1 and "alerts file" in bad.output


def test_alerts_file_is_validated() -> None:
    with pytest.raises(
        ValueError, match=re.escape("the alerts file: channels.x.type: Input should be 'slack'")
    ):
        parse_alerts_config({"channels": {"x": {"type": "sms"}}})
    with pytest.raises(ValueError, match="needs secret"):
        parse_alerts_config({"channels": {"x": {"type": "webhook", "url": "http://127.0.0.1/"}}})
    with pytest.raises(ValueError, match="unknown channel"):
        parse_alerts_config({"routes": {"default": ["nope"]}})
    with pytest.raises(ValueError, match=re.escape("detect.treshold: Extra inputs are not permitted")):
        parse_alerts_config({"detect": {"treshold": 3}})
    # Issue #10 failure 7: a string where a boolean or a number belongs.
    mail = {"type": "email", "host": "127.0.0.1", "from": "a@example.com", "to": "b@example.com"}
    with pytest.raises(
        ValueError, match=re.escape("alerts.toml: channels.mail.port: Input should be a valid integer")
    ):
        parse_alerts_config({"channels": {"mail": {**mail, "port": "abc"}}}, "alerts.toml")
    with pytest.raises(
        ValueError, match=re.escape("channels.mail.starttls: Input should be a valid boolean")
    ):
        parse_alerts_config({"channels": {"mail": {**mail, "starttls": "maybe"}}})
    parsed = parse_alerts_config({"channels": {"mail": {**mail, "starttls": "false", "port": "587"}}})
    channel = parsed.channels["mail"]
    assert channel.option("starttls") is False and channel.option("port") == 587
    with pytest.raises(
        ValueError, match=re.escape("channels.mail.smtp_host: Extra inputs are not permitted")
    ):
        parse_alerts_config({"channels": {"mail": {**mail, "smtp_host": "x"}}})
    with pytest.raises(ValueError, match="time zone"):
        parse_alerts_config({"detect": {"timezone": "Mars/Olympus"}})
    config = parse_alerts_config({"detect": {"by": "use_case", "min_spend_usd": 50, "check_time": "09:30"}})
    assert config.detect.min_spend_nanos == 50 * USD and config.detect.check_time == time(9, 30)


def test_alert_queries_on_every_backend(database_url: str) -> None:
    """The migration and every alert query on SQLite and PostgreSQL: one spike, opened once, resolved once."""
    store = open_store(database_url)
    store.migrate()
    try:
        ledger = Ledger(store)
        ledger.history("platform", TODAY, 10, weekday_usd=100, weekend_usd=100)
        ledger.day(TODAY, "platform", 500, use_case="autonomous-agent")
        hourly = store.spend_hourly("team", "2026-11-24T00:00:00Z", "2026-11-24T12:00:00Z")
        assert sorted((r.hour, r.cost_nanos) for r in hourly) == [
            (f"2026-11-24T{h:02d}", 100 * USD) for h in HOURS[:3]
        ]
        totals = store.spend_totals("use_case", "2026-11-24", "2026-11-25", where=("team", "platform"))
        assert totals == {"autonomous-agent": 500 * USD}
        config = quiet_config()
        (msg, _), *rest = plan(store, config, at(TODAY, 16))
        assert rest == [] and plan(store, config, at(TODAY, 17)) == []
        assert msg.details["top_contributor"] == {"dimension": "use_case", "value": "autonomous-agent"}
        assert store.alert_keys(["anomaly:team:platform:2026-11-24", "nope"]) == {
            "anomaly:team:platform:2026-11-24"
        }
        for attempt, status in ((1, "failed"), (2, "delivered")):
            store.record_alert_delivery(
                alert_id=msg.alert_id,
                channel="hook",
                action="trigger",
                attempt=attempt,
                status=status,
                at=f"2026-11-24T16:00:0{attempt}.000000Z",
                http_status=500 if attempt == 1 else 200,
            )
        assert [d.status for d in store.list_alert_deliveries(msg.alert_id)] == ["failed", "delivered"]
        assert store.resolve_alert(msg.alert_id, "2026-11-25T00:00:00.000000Z", "day ended") is True
        assert store.resolve_alert(msg.alert_id, "2026-11-25T00:00:00.000000Z", "day ended") is False
        (row,) = store.list_alerts(status="resolved", kind="anomaly")
        assert row.details["ratio"] == 5.0 and row.resolve_note == "day ended"
    finally:
        store.close()
