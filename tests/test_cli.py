"""The admin and report commands, run in-process against a fresh SQLite file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner, Result

from spendgate.auth import hash_key
from spendgate.cli import build_app
from spendgate.models import LedgerRow
from spendgate.store import open_store
from tests.tables import table_rows


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path}/cli.db"
        self.app = build_app()
        self.runner = CliRunner(env={"SPENDGATE_DATABASE_URL": self.url})

    def run(self, *args: str) -> Result:
        return self.runner.invoke(self.app, list(args))

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code == 0, (args, result.output)
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--format", "json"))

    def fails(self, *args: str) -> str:
        """The one-line error of a command that must fail cleanly (exit 1, no traceback)."""
        result = self.run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught error
        assert "Traceback" not in result.output
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        return lines[0]

    def seed_principals(self) -> dict[str, Any]:
        org = self.json("orgs", "create", "acme")
        team = self.json("teams", "create", "platform", "--org", "acme", "--cost-center", "CC-100")
        research = self.json("teams", "create", "research", "--org", "acme", "--cost-center", "CC-200")
        user = self.json("users", "create", "ada", "--team", "platform", "--email", "ada@example.com")
        return {"org": org, "team": team, "research": research, "user": user}

    def seed_store(self, rows: list[LedgerRow]) -> dict[str, str]:
        """Principals and ledger rows written straight to the database (quicker than via the CLI)."""
        store = open_store(self.url)
        try:
            store.migrate()
            store.create_org("acme")
            ids = {
                "platform": store.create_team("acme", "platform", "CC-100").id,
                "research": store.create_team("acme", "research", "CC-200").id,
            }
            store.create_user("platform", "ada", "ada@example.com")
            for row in rows:
                row.team_id = ids.get(row.team_id or "", row.team_id)
            assert store.insert_ledger_rows(rows) == len(rows)
        finally:
            store.close()
        return ids


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def ledger_row(n: int, team_id: str, started_at: str, cost_nanos: int, **extra: Any) -> LedgerRow:
    values: dict[str, Any] = {
        "request_id": f"req-{n}", "provider": "anthropic", "endpoint": "/v1/messages",
        "started_at": started_at, "ended_at": started_at, "status_code": 200, "status": "ok",
        "use_case": "chat", "team_id": team_id, "upstream_model": "claude-haiku-4-5",
        "input_tokens": 1000 * n, "output_tokens": 10 * n, "cost_nanos": cost_nanos,
    }
    values.update(extra)
    return LedgerRow(**values)


def seed_spend(cli: Cli) -> dict[str, str]:
    """Team ids by name; three calls: platform 0.0015 + 0.003 USD, research 12.3456789 USD."""
    return cli.seed_store([
        ledger_row(1, "platform", "2026-01-10T10:00:00.000000Z", 1_500_000),
        ledger_row(2, "platform", "2026-02-15T10:00:00.000000Z", 3_000_000, cache_read_tokens=50),
        ledger_row(3, "research", "2026-03-01T12:00:00.000000Z", 12_345_678_900, estimated=True,
                   upstream_model="gpt-4o", provider="openai"),
    ])


def test_principals_create_list_revoke(cli: Cli) -> None:
    made = cli.seed_principals()
    assert made["org"]["name"] == "acme" and made["org"]["id"].startswith("org_")
    assert made["team"]["org_id"] == made["org"]["id"] and made["team"]["cost_center"] == "CC-100"
    assert made["user"]["team_id"] == made["team"]["id"] and made["user"]["email"] == "ada@example.com"

    assert [o["id"] for o in cli.json("orgs", "list")] == [made["org"]["id"]]
    assert [t["name"] for t in cli.json("teams", "list")] == ["platform", "research"]
    assert [u["name"] for u in cli.json("users", "list")] == ["ada"]

    table = cli.ok("teams", "list")
    assert "platform" in table and "CC-200" in table and made["team"]["id"] in table

    revoked = cli.json("teams", "revoke", "research")
    assert revoked["id"] == made["research"]["id"] and revoked["revoked_at"] is not None
    assert [t["name"] for t in cli.json("teams", "list")] == ["platform"]
    assert len(cli.json("teams", "list", "--include-revoked")) == 2
    assert cli.json("users", "revoke", made["user"]["id"])["revoked_at"] is not None
    assert cli.json("users", "list") == []
    assert cli.json("orgs", "revoke", "acme")["revoked_at"] is not None
    assert cli.json("orgs", "list") == []


def test_keys_create_list_revoke(cli: Cli) -> None:
    made = cli.seed_principals()
    created = cli.json(
        "keys", "create", "--name", "ada-laptop", "--team", "platform", "--user", "ada",
        "--use-case", "coding", "--tag", "env=dev", "--tag", "repo=spendgate", "--expires", "2026-12-31",
    )
    secret = created["key"]
    assert secret.startswith("sk-sg-") and created["prefix"] == secret[:12]
    assert created["name"] == "ada-laptop" and created["id"].startswith("key_")
    assert created["team_id"] == made["team"]["id"] and created["user_id"] == made["user"]["id"]
    assert created["default_use_case"] == "coding"
    assert created["default_tags"] == {"env": "dev", "repo": "spendgate"}
    assert created["expires_at"] == "2026-12-31T00:00:00.000000Z"
    assert "key_hash" not in created

    # The stored key is usable by a gateway: its hash is among the active principals.
    store = open_store(cli.url)
    try:
        principal = store.active_principals()[hash_key(secret)]
    finally:
        store.close()
    assert principal.key_id == created["id"] and principal.cost_center == "CC-100"

    table = cli.ok("keys", "create", "--name", "ci", "--team", "platform")
    table_secret = next(line.split()[1] for line in table.splitlines() if line.startswith("key: sk-sg-"))
    assert "cannot be shown again" in table
    assert len(table_secret) == len(secret)

    listed = cli.ok("keys", "list", "--format", "json")
    assert secret not in listed and table_secret not in listed and "key_hash" not in listed
    assert [k["name"] for k in json.loads(listed)] == ["ada-laptop", "ci"]
    assert secret not in cli.ok("keys", "list")

    revoked = cli.json("keys", "revoke", "ada-laptop")
    assert revoked["id"] == created["id"] and revoked["revoked_at"] is not None
    assert [k["name"] for k in cli.json("keys", "list")] == ["ci"]
    assert len(cli.json("keys", "list", "--include-revoked")) == 2


def test_spend_json_csv_table(cli: Cli) -> None:
    teams = seed_spend(cli)
    rows = cli.json("spend", "--by", "team")
    assert rows == [
        {
            "team": "research", "id": teams["research"], "requests": 1, "input_tokens": 3000,
            "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0, "cache_read_tokens": 0,
            "output_tokens": 30, "reasoning_tokens": 0, "estimated_requests": 1, "cost_usd": "12.3456789",
        },
        {
            "team": "platform", "id": teams["platform"], "requests": 2, "input_tokens": 3000,
            "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0, "cache_read_tokens": 50,
            "output_tokens": 30, "reasoning_tokens": 0, "estimated_requests": 0, "cost_usd": "0.0045",
        },
    ]

    text = cli.ok("spend", "--by", "team", "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0].startswith("team,id,requests,input_tokens,")
    assert [(r["team"], r["requests"], r["cost_usd"]) for r in parsed] == [
        ("research", "1", "12.3456789"), ("platform", "2", "0.0045"),
    ]

    table = cli.ok("spend", "--by", "team")
    total_line = next(line for line in table.splitlines() if "total" in line)
    cells = [c.strip() for c in total_line.split("│")[1:-1]]
    # requests, input, cache write, cache read, output, USD to 4 places (12.3456789 + 0.0015 + 0.003)
    assert cells == ["total", "3", "6,000", "0", "50", "60", "$12.3502"]
    assert "platform" in table and "$0.0045" in table

    by_model = cli.json("spend", "--by", "model")
    assert [(r["model"], r["cost_usd"]) for r in by_model] == [
        ("gpt-4o", "12.3456789"), ("claude-haiku-4-5", "0.0045"),
    ]


def test_spend_by_session_labels_calls_without_one(cli: Cli) -> None:
    """Calls with no session (NULL, or '' as rows written before it was normalised) are one group:
    `(no session)` in the table, null in JSON and an empty cell in CSV."""
    cli.seed_store([
        ledger_row(1, "platform", "2026-01-10T10:00:00.000000Z", 1_000_000, session_id="s-ada"),
        ledger_row(2, "platform", "2026-01-10T11:00:00.000000Z", 2_000_000),
        ledger_row(3, "platform", "2026-01-10T12:00:00.000000Z", 4_000_000, session_id=""),
    ])
    rows = cli.json("spend", "--by", "session")
    assert [(r["session"], r["id"], r["requests"], r["cost_usd"]) for r in rows] == [
        (None, None, 2, "0.006"), ("s-ada", "s-ada", 1, "0.001"),
    ]
    header, *lines, total = table_rows(cli.ok("spend", "--by", "session"))
    assert header[0] == "session"
    assert [(line[0], line[1]) for line in lines] == [("(no session)", "2"), ("s-ada", "1")]
    assert total[:2] == ["total", "3"]
    parsed = list(csv.DictReader(io.StringIO(cli.ok("spend", "--by", "session", "--format", "csv"))))
    assert [(r["session"], r["requests"]) for r in parsed] == [("", "2"), ("s-ada", "1")]


def test_spend_period_filter(cli: Cli) -> None:
    seed_spend(cli)
    february = cli.json("spend", "--by", "team", "--since", "2026-02-01", "--until", "2026-03-01")
    assert [(r["team"], r["requests"], r["cost_usd"]) for r in february] == [("platform", 1, "0.003")]
    from_march = cli.json("spend", "--by", "use_case", "--since", "2026-03-01T00:00:00Z")
    assert [(r["use_case"], r["requests"], r["cost_usd"]) for r in from_march] == [("chat", 1, "12.3456789")]
    assert cli.json("spend", "--since", "2027-01-01") == []
    empty_csv = cli.ok("spend", "--by", "key", "--since", "2027-01-01", "--format", "csv")
    assert empty_csv.splitlines() == [
        "key,id,requests,input_tokens,cache_write_5m_tokens,cache_write_1h_tokens,cache_read_tokens,"
        "output_tokens,reasoning_tokens,estimated_requests,cost_usd"
    ]


def test_ledger_tail(cli: Cli) -> None:
    seed_spend(cli)
    rows = cli.json("ledger", "tail", "--limit", "2")
    assert [r["request_id"] for r in rows] == ["req-2", "req-3"]
    assert [(r["team"], r["cost_usd"], r["estimated"]) for r in rows] == [
        ("platform", "0.003", False), ("research", "12.3456789", True),
    ]
    assert rows[1]["cost_nanos"] == 12_345_678_900 and rows[1]["upstream_model"] == "gpt-4o"
    table = cli.ok("ledger", "tail")
    for expected in ("req-1", "req-3", "research", "gpt-4o", "$12.345679", "$0.001500", "yes"):
        assert expected in table
    assert [r["request_id"] for r in cli.json("ledger", "tail", "--until", "2026-02-01")] == ["req-1"]


def test_errors_are_one_line_exit_1(cli: Cli) -> None:
    cli.seed_store([])
    message = cli.fails("spend", "--by", "colour")
    assert "team" in message and "cost_center" in message and "session" in message
    assert "orgs" in cli.fails("orgs", "create", "acme")  # a duplicate name is a Conflict
    assert "no org named 'mars'" in cli.fails("teams", "create", "x", "--org", "mars", "--cost-center", "1")
    assert "no team named" in cli.fails("users", "create", "bob", "--team", "ghosts")
    assert "no key named" in cli.fails("keys", "revoke", "ghost")
    assert "no user named" in cli.fails("users", "revoke", "ghost")
    assert "not in team" in cli.fails("keys", "create", "--name", "k", "--team", "research", "--user", "ada")
    assert "soon" in cli.fails("keys", "create", "--name", "k", "--team", "platform", "--expires", "soon")
    assert "key=value" in cli.fails("keys", "create", "--name", "k", "--team", "platform", "--tag", "oops")
    assert "ISO date" in cli.fails("spend", "--since", "last week")
    assert "at least 1" in cli.fails("ledger", "tail", "--limit", "0")
    assert cli.json("keys", "list") == []  # none of the failed creates left a key


def test_unsupported_database_url_is_a_clean_error(tmp_path: Path) -> None:
    runner = CliRunner(env={"SPENDGATE_DATABASE_URL": "mysql://nope"})
    result = runner.invoke(build_app(), ["orgs", "list"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr.strip() == "error: unsupported SPENDGATE_DATABASE_URL scheme: mysql"



def test_the_settings_are_read_once_per_invocation(monkeypatch: pytest.MonkeyPatch) -> None:
    from spendgate.cli import common
    from spendgate.config import Settings

    # a command that reads the settings twice, run by the real root group
    read: list[tuple[Settings, Settings]] = []
    probe = typer.Typer()

    @probe.command()
    def twice() -> None:
        read.append((common.settings(), common.settings()))

    group = typer.main.get_group(build_app())
    group.add_command(typer.main.get_command(probe), "twice")
    for url in ("sqlite:///first.db", "sqlite:///second.db"):
        monkeypatch.setenv("SPENDGATE_DATABASE_URL", url)
        group.main(["twice"], standalone_mode=False)
    (first, again), (second, _) = read
    assert first is again  # read once within an invocation
    assert (first.database_url, second.database_url) == ("sqlite:///first.db", "sqlite:///second.db")
    assert common.settings() is not common.settings()  # outside any invocation: read on each use
