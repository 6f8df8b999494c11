"""Budgets, exemptions, recommendations and key limits: the CLI on a temp SQLite file, and the
admin API over real HTTP (changes must apply at once to the running gateway)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from spendgate.app import create_app
from spendgate.budgets.recommend import DailySpend, recommend
from spendgate.cli import build_app
from spendgate.config import Settings
from spendgate.gateway import Gateway
from spendgate.models import LedgerRow
from spendgate.servethread import ServerThread
from spendgate.store import open_store

USD = 1_000_000_000
MASTER = "master-budgets"
AUTH = {"authorization": f"Bearer {MASTER}"}
CALL_BODY = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path}/budgets.db"
        self.app = build_app()
        self.runner = CliRunner(env={"SPENDGATE_DATABASE_URL": self.url})

    def ok(self, command: str) -> str:
        """Run `command` (split like a shell would); its stdout."""
        result = self.runner.invoke(self.app, shlex.split(command))
        assert result.exit_code == 0, (command, result.output)
        return result.stdout

    def json(self, command: str) -> Any:
        return json.loads(self.ok(command + " --format json"))

    def fails(self, command: str) -> str:
        """The one-line error of a command that must fail cleanly (exit 1, no traceback)."""
        result: Result = self.runner.invoke(self.app, shlex.split(command))
        assert result.exit_code == 1, (command, result.output)
        assert isinstance(result.exception, SystemExit), result.exception
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        return lines[0]

    def seed(self, rows: Sequence[LedgerRow] = ()) -> dict[str, str]:
        """Org acme, teams platform and research, user ada, key k1; rows' team names become ids."""
        store = open_store(self.url)
        try:
            store.migrate()
            ids = {"acme": store.create_org("acme").id}
            ids["platform"] = store.create_team("acme", "platform", "CC-100").id
            ids["research"] = store.create_team("acme", "research", "CC-200").id
            ids["ada"] = store.create_user("platform", "ada", None).id
            key: dict[str, Any] = {"key_hash": "h1", "key_prefix": "sk-sg-k1xx", "default_tags": {}}
            ids["k1"] = store.create_key(
                **key, name="k1", team="platform", user=None, default_use_case=None, expires_at=None
            ).id
            for row in rows:
                row.team_id = ids.get(row.team_id or "", row.team_id)
            assert store.insert_ledger_rows(rows) == len(rows)
        finally:
            store.close()
        return ids


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def row(n: int, at: datetime | str, usd: str, team: str | None = "platform", **extra: Any) -> LedgerRow:
    started = at if isinstance(at, str) else at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    dollars, _, cents = usd.partition(".")
    nanos = int(dollars) * USD + int((cents + "0" * 9)[:9])
    call = {"provider": "anthropic", "endpoint": "/v1/messages", "status_code": 200, "status": "ok"}
    values: dict[str, Any] = {**call, "use_case": "chat", "team_id": team, "cost_nanos": nanos, **extra}
    return LedgerRow(request_id=f"req-{n}", started_at=started, ended_at=started, **values)


def month_start() -> datetime:
    return datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


# --- budgets ---


def test_budgets_for_every_scope_with_spend_so_far(cli: Cli) -> None:
    start = month_start() + timedelta(seconds=1)  # inside this month's window, whenever the test runs
    ids = cli.seed(
        [
            row(1, start, "30", key_id="KEY", user_id="ADA", org_id="ORG", cost_center="CC-100"),
            row(2, start, "55", tags={"env": "dev"}),
            row(3, start, "2", session_id="s1", use_case="agents"),
            row(4, start, "3", session_id="s2", use_case="agents"),
            row(5, start - timedelta(days=40), "999"),  # an earlier month: not in this period
        ]
    )
    scopes = "org acme 1000, team platform 100, user ada 50, key k1 50, cost_center CC-100 200, "
    scopes += "use_case agents 10, tag env=dev 100, session * 2.50"
    create, made = "budgets create --name b-{0} --scope {0} --value '{1}' --amount {2}", {}
    for scope, value, amount in (item.split() for item in scopes.split(", ")):
        made[scope] = cli.json(create.format(scope, value, amount))
    # Names are resolved to ids for org/team/user/key; the label shows the name again.
    assert {s: b["scope_value"] for s, b in made.items()} == {
        **{"org": ids["acme"], "team": ids["platform"], "user": ids["ada"], "key": ids["k1"]},
        **{"cost_center": "CC-100", "use_case": "agents", "tag": "env=dev", "session": "*"},
    }
    assert made["team"]["scope"] == "team:platform" and made["key"]["scope"] == "key:k1"
    assert made["team"]["amount_usd"] == "100" and made["team"]["hard_limit_usd"] == "150"
    tiers = [(t["name"], t["percent"], t["action"]) for t in made["team"]["tiers"]]
    assert tiers == [("alert", 80, None), ("amber", 110, None), ("hard", 150, None)]
    assert made["session"]["hard_limit_usd"] == "3.75" and made["team"]["mode"] == "enforce"

    # The ledger rows name ids of their own (ORG/ADA/KEY), so the org, user and key budgets see none.
    listed = {b["name"]: b for b in cli.json("budgets list")}
    next_month = (month_start() + timedelta(days=32)).replace(day=1)
    team = listed["b-team"]
    assert team["period_key"] == month_start().strftime("%Y-%m")
    assert team["reset_at"] == next_month.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    assert (team["spent_usd"], team["percent_used"], team["tier_reached"]) == ("90", 90.0, "alert")
    assert (listed["b-cost_center"]["spent_usd"], listed["b-cost_center"]["percent_used"]) == ("30", 15.0)
    assert (listed["b-use_case"]["spent_usd"], listed["b-use_case"]["tier_reached"]) == ("5", None)
    assert listed["b-tag"]["spent_usd"] == "55"
    session = listed["b-session"]  # a cap per session: the busiest session counts
    assert (session["spent_usd"], session["percent_used"], session["tier_reached"]) == ("3", 120.0, "amber")
    assert session["note"] == "per session; highest: s2"
    assert listed["b-org"]["spent_usd"] == "0" and listed["b-user"]["status"] == "active"

    table = cli.ok("budgets list")
    assert "team:platform" in table and "90.0%" in table and "per session; highest: s2" in table

    revoked = cli.json("budgets revoke b-team")
    assert revoked["id"] == made["team"]["id"] and revoked["revoked_at"] is not None
    assert "b-team" not in {b["name"] for b in cli.json("budgets list")}
    everything = {b["name"]: b for b in cli.json("budgets list --include-revoked")}
    assert everything["b-team"]["status"] == "revoked" and everything["b-team"]["reset_at"] is None


def test_periods_time_zones_tiers_and_observe(cli: Cli) -> None:
    cli.seed([row(1, "2025-12-15T10:00:00.000000Z", "7.25"), row(2, "2026-01-02T10:00:00.000000Z", "1")])
    fixed = cli.json(
        "budgets create --name december --scope team --value platform --amount 10 --period fixed"
        " --start 2025-12-01 --end 2026-01-01 --timezone Europe/Berlin"
        " --tiers alert=50,amber=90:downgrade:fast,hard=100 --observe"
    )
    # A window without an offset is read in the budget's zone: Berlin midnight is 23:00 UTC in winter.
    assert fixed["window_start"] == "2025-11-30T23:00:00.000000Z"
    assert fixed["window_end"] == "2025-12-31T23:00:00.000000Z"
    assert fixed["mode"] == "observe" and fixed["hard_limit_usd"] == "10"
    assert fixed["tiers"][1] == {"name": "amber", "percent": 90, "action": "downgrade:fast"}
    command = "budgets create --name daily --scope use_case --value chat --amount 0.5 --period day"
    daily = cli.json(command + " --timezone America/New_York")
    assert daily["timezone"] == "America/New_York" and daily["amount_usd"] == "0.5"

    listed = {b["name"]: b for b in cli.json("budgets list")}
    assert listed["december"]["status"] == "ended" and listed["december"]["reset_at"] is None
    assert (listed["december"]["spent_usd"], listed["december"]["percent_used"]) == ("7.25", 72.5)
    assert listed["december"]["tier_reached"] == "alert"
    assert listed["daily"]["reset_at"][11:] in ("04:00:00.000000Z", "05:00:00.000000Z")  # NY midnight
    unsorted = "hard=100,amber=90:downgrade:fast,alert=50"
    table = cli.ok(f"budgets create --name t --scope team --value research --amount 1 --tiers {unsorted}")
    assert "alert=50,amber=90:downgrade:fast,hard=100" in table  # sorted by percent


def test_bad_budget_input_is_one_line_exit_1(cli: Cli) -> None:
    cli.seed()
    team = "budgets create --name b --value platform --amount 10 --scope team"
    assert "scope must be one of org, team" in cli.fails(team.replace("team", "planet"))
    assert "unknown time zone 'Mars/Olympus'" in cli.fails(f"{team} --timezone Mars/Olympus")
    assert "fixed period needs --start and --end" in cli.fails(f"{team} --period fixed")
    assert "only apply to --period fixed" in cli.fails(f"{team} --start 2026-01-01")
    reversed_window = "--period fixed --start 2026-02-01 --end 2026-01-01"
    assert "must end after it starts" in cli.fails(f"{team} {reversed_window}")
    assert "period must be one of" in cli.fails(f"{team} --period year")
    assert "got 'amber'" in cli.fails(f"{team} --tiers alert=80,amber,hard=150")
    assert "got 'alert=eighty'" in cli.fails(f"{team} --tiers alert=eighty,hard=150")
    assert "need a hard=PERCENT tier" in cli.fails(f"{team} --tiers alert=80")
    assert "may appear once" in cli.fails(f"{team} --tiers hard=80,hard=150")
    assert "1..10000 percent" in cli.fails(f"{team} --tiers hard=0")
    assert "US dollars" in cli.fails(team.replace("10", "ten"))
    assert "positive" in cli.fails(team.replace("10", "-5"))
    assert "more than 9 decimal places" in cli.fails(team.replace("10", "0.0000000001"))
    assert "no team named 'ghosts'" in cli.fails(team.replace("platform", "ghosts"))
    assert "key=value" in cli.fails("budgets create --name b --scope tag --value x --amount 1")
    cli.json(team)
    assert "already exists" in cli.fails(team)
    assert "no budget named 'nope'" in cli.fails("budgets revoke nope")
    assert "ISO date" in cli.fails("budgets would-block --since 'last week'")
    assert "--days must be 1..366" in cli.fails("budgets recommend --days 0")
    assert "--by must be team or use_case" in cli.fails("budgets recommend --by model")
    assert [b["name"] for b in cli.json("budgets list")] == ["b"]  # no failed create left a budget


# --- exemptions ---


def test_exemption_lifecycle_and_audit_trail(cli: Cli) -> None:
    cli.seed()
    cli.json("budgets create --name team-platform --scope team --value platform --amount 200")
    asked = cli.json(
        "exemptions request --budget team-platform --amount 50 --hours 4 --use-case batch"
        " --reason 'quarter-end batch' --requested-by ada"
    )
    assert asked["status"] == "pending" and asked["state"] == "pending" and asked["active_now"] is False
    assert (asked["budget"], asked["extra_usd"], asked["amount_usd"]) == ("team-platform", "50", "50")
    assert asked["use_case"] == "batch" and asked["requested_by"] == "ada"
    window = datetime.fromisoformat(asked["ends_at"]) - datetime.fromisoformat(asked["starts_at"])
    assert window == timedelta(hours=4)

    own = cli.fails(f"exemptions approve {asked['id']} --by ada")
    assert "cannot be approved or denied by the person who requested it" in own
    approved = cli.json(f"exemptions approve {asked['id']} --by bob --note 'ok for Q4'")
    decision = (approved["status"], approved["decided_by"], approved["decision_note"])
    assert decision == ("approved", "bob", "ok for Q4")
    assert approved["state"] == "active" and approved["active_now"] is True and approved["decided_at"]
    assert "already approved" in cli.fails(f"exemptions deny {asked['id']} --by carol")

    percent = cli.json(
        "exemptions request --budget team-platform --percent 25 --start 2025-01-01 --end 2025-01-02"
        " --reason 'demo day' --requested-by ada"
    )
    assert percent["extra_usd"] == "50" and percent["amount_usd"] is None and percent["percent"] == 25
    assert percent["state"] == "expired"  # its window is over: it can never apply
    denied = cli.json(f"exemptions deny {percent['id']} --by carol")
    assert (denied["status"], denied["state"], denied["decision_note"]) == ("denied", "denied", None)
    assert "already denied" in cli.fails(f"exemptions approve {percent['id']} --by bob")

    trail = cli.json("exemptions list")
    assert [(e["id"], e["status"], e["requested_by"], e["decided_by"], e["reason"]) for e in trail] == [
        (asked["id"], "approved", "ada", "bob", "quarter-end batch"),
        (percent["id"], "denied", "ada", "carol", "demo day"),
    ]
    assert [e["id"] for e in cli.json("exemptions list --status approved")] == [asked["id"]]
    assert cli.json("exemptions list --status pending") == []
    table = cli.ok("exemptions list")
    assert "quarter-end batch" in table and "bob" in table and "active" in table

    ask = "exemptions request --budget team-platform --reason r --requested-by ada"
    assert "either --amount USD or --percent P" in cli.fails(f"{ask} --hours 1")
    assert "either --amount USD or --percent P" in cli.fails(f"{ask} --amount 1 --percent 5 --hours 1")
    assert "--hours H, or both --start and --end" in cli.fails(f"{ask} --amount 1")
    assert "not both" in cli.fails(f"{ask} --amount 1 --hours 1 --start 2026-01-01")
    assert "no budget named" in cli.fails(f"{ask.replace('team-platform', 'ghost')} --amount 1 --hours 1")
    assert "no exemption 'exm_nope'" in cli.fails("exemptions approve exm_nope --by bob")
    assert "status must be one of" in cli.fails("exemptions list --status maybe")


# --- observation mode report ---


def test_would_block_report(cli: Cli) -> None:
    both = "would_block:team-platform,would_block:org-cap"
    cli.seed(
        [
            row(1, "2026-03-01T10:00:00.000000Z", "1", budget_note="would_block:team-platform"),
            row(2, "2026-03-02T10:00:00.000000Z", "2", budget_note="would_block:team-platform"),
            row(3, "2026-03-03T10:00:00.000000Z", "0.5", budget_note=both),
            row(4, "2026-03-04T10:00:00.000000Z", "9", budget_note="blocked:other"),
            row(5, "2026-02-01T10:00:00.000000Z", "4", budget_note="would_block:org-cap"),
            row(6, "2026-03-05T10:00:00.000000Z", "8"),
        ]
    )
    cli.json("budgets create --name team-platform --scope team --value platform --amount 1 --observe")
    platform, org = cli.json("budgets would-block --since 2026-03-01")
    assert platform == {
        **{"would_block": "team-platform", "requests": 3, "cost_usd": "3.5", "scope": "team:platform"},
        **{
            "mode": "observe",
            "first_at": "2026-03-01T10:00:00.000000Z",
            "last_at": "2026-03-03T10:00:00.000000Z",
        },
    }
    # No such budget (any more): still reported, without a scope.
    assert (org["would_block"], org["requests"], org["cost_usd"], org["scope"]) == ("org-cap", 1, "0.5", None)
    whole = {r["would_block"]: r for r in cli.json("budgets would-block")}
    assert (whole["org-cap"]["requests"], whole["org-cap"]["cost_usd"]) == (2, "4.5")
    assert cli.json("budgets would-block --until 2026-01-01") == []
    table = cli.ok("budgets would-block --since 2026-03-01")
    assert "would block" in table and "team-platform" in table and "$3.5000" in table


# --- recommendations ---


def history() -> list[LedgerRow]:
    """platform: $10/day for 60 days. research: 20 days, 17 at $3, one at $50, two quiet.
    Plus what the window must leave out: today's partial day and a day 61 days ago."""
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    rows = [row(d, today - timedelta(days=d), "10") for d in range(1, 61)]
    research = {d: "3" for d in range(1, 21) if d not in (5, 6, 7)}
    research[7] = "50"
    for d, usd in research.items():
        rows.append(row(100 + d, today - timedelta(days=d), usd, team="research", use_case="agents"))
    rows += [row(200, today, "1000"), row(201, today - timedelta(days=61), "1000")]
    rows.append(row(202, today - timedelta(days=1), "0.01", team=None, use_case="tiny"))
    return rows


def test_recommend_is_pure_arithmetic() -> None:
    first = datetime(2026, 1, 1).date()
    rows = [DailySpend("team", "t1", "platform", first + timedelta(days=d), 10 * USD) for d in range(60)]
    rows.append(DailySpend("team", "t2", "late", first + timedelta(days=58), 7 * USD))
    [platform, late] = recommend(rows, window_start=first, days=60)
    assert platform.baseline_nanos == 304 * USD
    assert (platform.tier_nanos("amber"), platform.tier_nanos("hard")) == (425_600_000_000, 608 * USD)
    # Observed from its first day: 7 / 2 days x 30.4 = 106.40.
    assert (late.days_observed, late.days_with_data, late.baseline_nanos) == (2, 1, 106_400_000_000)
    assert late.p95_day_nanos == 7 * USD and late.avg_day_nanos == 3_500_000_000
    assert recommend(rows, window_start=first, days=60, min_baseline_nanos=200 * USD) == [platform]


def test_recommend_from_the_ledger_and_apply(cli: Cli) -> None:
    ids = cli.seed(history())
    recs = cli.json("budgets recommend --days 60")
    assert [r["name"] for r in recs] == ["platform", "research"]
    platform, research = recs
    assert platform == {
        **{"group": "team", "name": "platform", "id": ids["platform"], "budget_name": "rec-platform"},
        **{"window_days": 60, "first_day": (datetime.now(UTC) - timedelta(days=60)).date().isoformat()},
        **{"days_observed": 60, "days_with_data": 60, "total_usd": "600", "avg_day_usd": "10"},
        **{"p95_day_usd": "10", "max_day_usd": "10", "baseline_usd": "304", "alert_usd": "243.2"},
        **{"baseline_basis": "600 / 60 days x 30.4 = 304", "soft_usd": "425.6", "hard_usd": "608"},
        "tiers": "alert=80,amber=140,hard=200",
    }
    # 101 USD over 20 observed days = 5.05/day -> 153.52/month; p95 = 19th of 20 sorted days = 3.
    assert (research["days_observed"], research["days_with_data"], research["total_usd"]) == (20, 18, "101")
    assert (research["avg_day_usd"], research["p95_day_usd"], research["max_day_usd"]) == ("5.05", "3", "50")
    assert research["baseline_usd"] == "153.52"
    assert (research["soft_usd"], research["hard_usd"]) == ("214.928", "307.04")

    by_use_case = cli.json("budgets recommend --by use_case --min-usd 0")
    # tiny: 0.01 x 30.4 = 0.304, to the cent
    baselines = [(r["name"], r["baseline_usd"]) for r in by_use_case]
    assert baselines == [("chat", "304"), ("agents", "153.52"), ("tiny", "0.3")]
    table = cli.ok("budgets recommend")
    assert "425.6" in table and "x 30.4" in table and "--apply" in table

    # research has 21 days of history (today included), under the 60 days of observation: a warning,
    # and --apply refuses unless forced.
    warned = cli.runner.invoke(cli.app, ["budgets", "recommend"])
    assert "fewer than 60 days of history for research (21 days)" in warned.stderr
    refused = cli.fails("budgets recommend --apply")
    assert "--force" in refused and cli.json("budgets list") == []
    applied = cli.json("budgets recommend --apply --force")
    actions = [(r["budget_name"], r["action"]) for r in applied]
    assert actions == [("rec-platform", "created (observe)"), ("rec-research", "created (observe)")]
    rec = {b["name"]: b for b in cli.json("budgets list")}["rec-platform"]
    assert (rec["mode"], rec["amount_usd"], rec["hard_limit_usd"]) == ("observe", "304", "608")
    assert rec["scope"] == "team:platform"
    assert [(t["name"], t["percent"]) for t in rec["tiers"]] == [("alert", 80), ("amber", 140), ("hard", 200)]
    again = cli.json("budgets recommend --apply --enforce --force")
    assert {r["action"] for r in again} == {"skipped: name exists"}
    enforced = cli.json("budgets recommend --apply --enforce --by use_case --force")
    actions = [(r["budget_name"], r["action"]) for r in enforced]
    assert actions == [("rec-chat", "created (enforce)"), ("rec-agents", "created (enforce)")]


# --- rate limits ---


def test_keys_limit(cli: Cli) -> None:
    ids = cli.seed()
    limits = cli.json("keys limit k1 --rpm 60 --concurrency 2")
    assert (limits["id"], limits["name"], limits["prefix"]) == (ids["k1"], "k1", "sk-sg-k1xx")
    assert (limits["rpm_limit"], limits["tpm_limit"], limits["concurrency_limit"]) == (60, None, 2)
    kept = cli.json("keys limit sk-sg-k1xx --tpm 100000")
    assert (kept["rpm_limit"], kept["tpm_limit"], kept["concurrency_limit"]) == (60, 100000, 2)
    cleared = cli.json(f"keys limit {ids['k1']} --rpm 0")
    assert (cleared["rpm_limit"], cleared["tpm_limit"]) == (None, 100000)
    store = open_store(cli.url)
    try:
        principal = store.active_principals()["h1"]
    finally:
        store.close()
    assert (principal.rpm_limit, principal.tpm_limit, principal.concurrency_limit) == (None, 100000, 2)
    assert "no key named 'ghost'" in cli.fails("keys limit ghost --rpm 1")
    assert "0 (no limit) or more" in cli.fails("keys limit k1 --rpm -1")


# --- the admin API ---


class Api:
    def __init__(self, client: httpx.Client, gw: Gateway) -> None:
        self.client, self.gw = client, gw

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(f"/admin{path}", params=params, headers=AUTH)

    def post(self, path: str, body: dict[str, Any] | None = None, **params: Any) -> httpx.Response:
        return self.client.post(f"/admin{path}", json=body, params=params, headers=AUTH)

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, response.text
        return response.json()

    def error(self, response: httpx.Response, status: int) -> str:
        assert response.status_code == status, response.text
        return str(response.json()["error"]["message"])

    def call(self, key: str) -> httpx.Response:
        return self.client.post("/v1/messages", json=CALL_BODY, headers={"x-api-key": key})


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/api.db",
        master_key=MASTER,
        # Nothing listens on port 9: a call that passes budgets and limits ends in the gateway's 502.
        anthropic_base_url="http://127.0.0.1:9",
        openai_base_url="http://127.0.0.1:9/v1",
    )
    app = create_app(settings)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        api = Api(client, app.state.gateway)
        api.ok(api.post("/orgs", {"name": "acme"}), 201)
        api.ok(api.post("/teams", {"org": "acme", "name": "platform", "cost_center": "CC-100"}), 201)
        yield api


ROUTES = """GET /budgets, POST /budgets, POST /budgets/x/revoke, GET /budgets/events,
GET /budgets/would-block, GET /budgets/recommend, POST /budgets/recommend/apply, GET /exemptions,
POST /exemptions, POST /exemptions/x/approve, POST /exemptions/x/deny, POST /keys/x/limits"""


def test_api_routes_need_the_master_key(api: Api) -> None:
    for method, path in (route.split() for route in ROUTES.split(",")):
        response = api.client.request(method, f"/admin{path}", json={})
        assert response.status_code == 401, (method, path)


def test_api_budget_and_exemption_apply_at_once(api: Api) -> None:
    key = api.ok(api.post("/keys", {"name": "ci", "team": "platform"}), 201)["key"]
    assert api.call(key).status_code == 502  # no budget yet: through to the (absent) upstream

    tiers = [{"name": "hard", "percent": 100}, {"name": "alert", "percent": 50}]
    body = {"name": "tiny", "scope": "team", "value": "platform", "amount_usd": "0.000001", "tiers": tiers}
    made = api.ok(api.post("/budgets", body), 201)
    assert made["scope"] == "team:platform" and made["amount_usd"] == "0.000001"
    assert [t["name"] for t in made["tiers"]] == ["alert", "hard"]
    blocked = api.call(key)
    assert blocked.status_code == 429 and blocked.headers["x-spendgate-budget"] == "tiny"

    listed = api.ok(api.get("/budgets"))
    assert [(b["name"], b["spent_usd"], b["status"]) for b in listed] == [("tiny", "0", "active")]

    ask = {"budget": "tiny", "amount_usd": "5", "hours": 1, "reason": "release day", "requested_by": "ada"}
    asked = api.ok(api.post("/exemptions", ask), 201)
    assert asked["status"] == "pending" and asked["extra_usd"] == "5"
    assert api.call(key).status_code == 429  # pending gives nothing
    decide = f"/exemptions/{asked['id']}"
    assert "person who requested it" in api.error(api.post(f"{decide}/approve", {"by": "ada"}), 409)
    approved = api.ok(api.post(f"{decide}/approve", {"by": "bob", "note": "fine"}))
    assert (approved["decided_by"], approved["decision_note"]) == ("bob", "fine") and approved["active_now"]
    assert api.call(key).status_code == 502  # the exemption's headroom applies at once
    assert "already approved" in api.error(api.post(f"{decide}/deny", {"by": "carol"}), 409)
    assert [e["state"] for e in api.ok(api.get("/exemptions", status="approved"))] == ["active"]

    revoked = api.ok(api.post("/budgets/tiny/revoke"))
    assert revoked["revoked_at"] is not None
    assert api.ok(api.get("/budgets")) == []

    assert "scope must be one of" in api.error(api.post("/budgets", {**body, "scope": "planet"}), 400)
    assert "unknown time zone" in api.error(api.post("/budgets", {**body, "timezone": "X/Y"}), 400)
    assert "no team named 'ghosts'" in api.error(api.post("/budgets", {**body, "value": "ghosts"}), 404)
    assert "already exists" in api.error(api.post("/budgets", body), 409)
    assert "tiers are" in api.error(api.post("/budgets", {**body, "name": "q", "tiers": "hard"}), 400)
    assert api.ok(api.get("/budgets/events")) == [] and api.ok(api.get("/budgets/would-block")) == []


def test_api_recommend_and_key_limits(api: Api) -> None:
    team_id = api.ok(api.get("/teams"))[0]["id"]
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    api.gw.store.insert_ledger_rows([row(d, today - timedelta(days=d), "10", team_id) for d in range(1, 61)])
    [rec] = api.ok(api.get("/budgets/recommend", days=60))
    assert (rec["name"], rec["baseline_usd"], rec["soft_usd"]) == ("platform", "304", "425.6")
    assert (rec["hard_usd"], rec["days_observed"], rec["avg_day_usd"]) == ("608", 60, "10")
    [applied] = api.ok(api.post("/budgets/recommend/apply", days=60), 201)
    assert applied["action"] == "created (observe)"
    assert [(b["name"], b["mode"]) for b in api.ok(api.get("/budgets"))] == [("rec-platform", "observe")]

    key = api.ok(api.post("/keys", {"name": "bot", "team": "platform"}), 201)["key"]
    limits = api.ok(api.post("/keys/bot/limits", {"rpm": 1}))
    assert (limits["name"], limits["rpm_limit"], limits["tpm_limit"]) == ("bot", 1, None)
    assert api.call(key).status_code == 502
    limited = api.call(key)  # the second call in the minute: the new limit applies at once
    assert limited.status_code == 429 and "rate limit" in limited.text
    assert api.ok(api.post("/keys/bot/limits", {"rpm": 0}))["rpm_limit"] is None
    assert api.error(api.post("/keys/ghost/limits", {"rpm": 1}), 404)
    assert api.error(api.post("/keys/bot/limits", {"rpm": -1}), 422)
