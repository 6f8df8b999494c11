"""Merged PRs in (GitHub webhook over real HTTP, gh/CSV backfill), identity mapping, and the cost
per merged PR, on every storage backend."""

from __future__ import annotations

import csv
import io
import json
import shlex
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from spendgate.app import create_app
from spendgate.cli import build_app
from spendgate.fake_upstream import FakeUpstream
from spendgate.finance import cost_per_pr as cpp
from spendgate.finance.github import parse_csv, parse_gh_json, sign, verify_signature
from spendgate.gateway import Gateway
from spendgate.models import LedgerRow
from spendgate.servethread import ServerThread
from spendgate.store import Store, open_store
from tests.conftest import RunningGateway, gateway_settings

SECRET = "whsec-test-secret"
USD = 1_000_000_000


# --- webhook ------------------------------------------------------------------------------------
def pr_event(number: int = 7, *, merged: bool = True, action: str = "closed") -> dict[str, Any]:
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "html_url": f"https://github.com/Acme/Widgets/pull/{number}",
            "title": "Add the widget",
            "merged": merged,
            "merged_at": "2026-11-03T10:15:00Z" if merged else None,
            "user": {"login": "Octo-Dev"},
            "base": {"ref": "main", "repo": {"full_name": "Acme/Widgets"}},
            "head": {"ref": "feat/widget"},
            "additions": 120,
            "deletions": 8,
        },
        "repository": {"full_name": "Acme/Widgets"},
    }


def deliver(
    url: str,
    payload: dict[str, Any],
    delivery: str,
    *,
    event: str = "pull_request",
    signature: str | None = None,
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {
        "content-type": "application/json",
        "x-github-event": event,
        "x-github-delivery": delivery,
        "x-hub-signature-256": signature if signature is not None else sign(SECRET.encode(), body),
    }
    return httpx.post(f"{url}/webhooks/github", content=body, headers=headers)


@pytest.fixture
def hooked(tmp_path: Path, fake: FakeUpstream, database_url: str) -> Iterator[tuple[str, Gateway]]:
    settings = gateway_settings(
        tmp_path,
        fake,
        database_url=database_url,
        spool_dir=tmp_path / "spool",
        github_webhook_secret=SECRET,
    )
    app = create_app(settings)
    with ServerThread(app) as server:
        yield server.url, app.state.gateway


def test_webhook_valid_signature_stores_the_merge_and_a_replay_changes_nothing(
    hooked: tuple[str, Gateway],
) -> None:
    url, gw = hooked
    r = deliver(url, pr_event(), "delivery-1")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "duplicate": False,
        "delivery": "delivery-1",
        "event": "pull_request",
        "pull_request": "acme/widgets#7",
        "stored": "new",
    }
    [pr] = gw.store.merged_pull_requests()
    assert (pr["repo"], pr["number"], pr["author"]) == ("acme/widgets", 7, "octo-dev")
    assert pr["merged_at"] == "2026-11-03T10:15:00.000000Z"
    assert (pr["base_ref"], pr["head_ref"], pr["additions"], pr["deletions"]) == (
        "main",
        "feat/widget",
        120,
        8,
    )
    assert pr["mapped_by"] == "unmapped" and pr["team_id"] is None

    replay = pr_event()
    replay["pull_request"]["title"] = "changed in flight"
    r = deliver(url, replay, "delivery-1")
    assert r.status_code == 200 and r.json()["duplicate"] is True
    [again] = gw.store.merged_pull_requests()
    assert again["title"] == "Add the widget"
    # The same merge under a new delivery id (GitHub "redeliver" makes a new id) is unchanged.
    r = deliver(url, pr_event(), "delivery-2")
    assert r.json()["stored"] == "unchanged" and len(gw.store.merged_pull_requests()) == 1


def test_webhook_rejects_invalid_and_missing_signatures(hooked: tuple[str, Gateway]) -> None:
    url, gw = hooked
    body = json.dumps(pr_event()).encode()
    wrong = sign(b"not-the-secret", body)
    assert deliver(url, pr_event(), "d-1", signature=wrong).status_code == 401
    assert deliver(url, pr_event(), "d-1", signature="").status_code == 401
    other = sign(SECRET.encode(), b"{}")  # valid for another body: the body was tampered with
    r = deliver(url, pr_event(), "d-1", signature=other)
    assert r.status_code == 401 and "X-Hub-Signature-256" in r.json()["error"]
    assert gw.store.merged_pull_requests() == []
    # Rejected deliveries are not remembered: the genuine one with that id is processed.
    assert deliver(url, pr_event(), "d-1").json()["stored"] == "new"


def test_webhook_ignores_closed_unmerged_and_other_events(hooked: tuple[str, Gateway]) -> None:
    url, gw = hooked
    r = deliver(url, pr_event(8, merged=False), "d-unmerged")
    assert r.status_code == 200 and r.json()["ignored"] == "not a merged pull request"
    r = deliver(url, pr_event(9, action="opened"), "d-opened")
    assert r.status_code == 200 and "ignored" in r.json()
    r = deliver(url, {"zen": "Keep it simple."}, "d-ping", event="ping")
    assert r.status_code == 200 and "ignored" in r.json()
    r = deliver(url, pr_event(10), "d-push", event="push")
    assert r.status_code == 200 and "ignored" in r.json()
    assert gw.store.merged_pull_requests() == []
    r = httpx.post(
        f"{url}/webhooks/github",
        content=b"{not json",
        headers={
            "x-github-event": "pull_request",
            "x-github-delivery": "d-bad",
            "x-hub-signature-256": sign(SECRET.encode(), b"{not json"),
        },
    )
    assert r.status_code == 400


def test_webhook_without_a_configured_secret_is_503(gateway: RunningGateway) -> None:
    r = deliver(gateway.url, pr_event(), "d-1")
    assert r.status_code == 503 and "SPENDGATE_GITHUB_WEBHOOK_SECRET" in r.json()["error"]


def test_signature_helpers() -> None:
    body = b'{"a": 1}'
    assert verify_signature(b"k", body, sign(b"k", body))
    assert not verify_signature(b"k", body, None)
    assert not verify_signature(b"k", body + b" ", sign(b"k", body))


# --- CLI on each backend -----------------------------------------------------------------------
class Cli:
    def __init__(self, database_url: str) -> None:
        self.app = build_app()
        self.runner = CliRunner(env={"SPENDGATE_DATABASE_URL": database_url})

    def ok(self, command: str) -> str:
        result = self.runner.invoke(self.app, shlex.split(command))
        assert result.exit_code == 0, (command, result.output)
        return result.stdout

    def json(self, command: str) -> Any:
        return json.loads(self.ok(command + " --format json"))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = open_store(database_url)
    s.migrate()
    org = s.create_org("acme")
    for team in ("platform", "mobile"):
        s.create_team(org.name, team, f"CC-{team}")
    s.create_user("platform", "ada", None)
    s.create_user("mobile", "grace", None)
    yield s
    s.close()


@pytest.fixture
def cli(database_url: str, store: Store) -> Cli:
    return Cli(database_url)


def gh_json(prs: list[tuple[int, str, str]], repo: str = "acme/widgets") -> str:
    """(number, author login, mergedAt) -> what gh pr list --json prints."""
    return json.dumps(
        [
            {
                "number": n,
                "title": f"PR {n}",
                "author": {"login": login, "name": login.title()},
                "mergedAt": merged_at,
                "headRefName": f"branch-{n}",
                "baseRefName": "main",
                "url": f"https://github.com/{repo}/pull/{n}",
            }
            for n, login, merged_at in prs
        ]
    )


def spend(store: Store, team: str, started_at: str, nanos: int, **extra: Any) -> None:
    team_id = next(t.id for t in store.list_teams() if t.name == team)
    store.insert_ledger_rows(
        [
            LedgerRow(
                request_id=f"req-{team}-{started_at}-{nanos}-{len(extra)}",
                provider="anthropic",
                endpoint="/v1/messages",
                started_at=started_at,
                ended_at=started_at,
                status_code=200,
                status="ok",
                use_case=str(extra.pop("use_case", "untagged")),
                team_id=team_id,
                cost_nanos=nanos,
                tags=extra.pop("tags", {}),
            )
        ]
    )


def test_backfill_from_gh_json_is_idempotent(cli: Cli, store: Store, tmp_path: Path) -> None:
    prs = [(1, "ada-gh", "2026-10-01T09:00:00Z"), (2, "grace-gh", "2026-10-02T09:00:00Z")]
    data = json.loads(gh_json(prs))
    data.append({"number": 3, "title": "open", "author": {"login": "x"}, "mergedAt": None, "url": ""})
    file = tmp_path / "prs.json"
    file.write_text(json.dumps(data))
    assert (
        cli.ok(f"prs import --repo Acme/Widgets {file}").strip()
        == "2 new, 0 unchanged, 1 skipped (not merged)"
    )
    assert (
        cli.ok(f"prs import --repo acme/widgets {file}").strip()
        == "0 new, 2 unchanged, 1 skipped (not merged)"
    )
    # Without --repo the repository comes from each PR's url: the same key, still unchanged.
    file.write_text(gh_json(prs))
    assert cli.json(f"prs import {file}") == {"new": 0, "updated": 0, "unchanged": 2, "skipped_not_merged": 0}
    assert len(store.merged_pull_requests()) == 2


def test_backfill_from_csv_is_idempotent(cli: Cli, store: Store, tmp_path: Path) -> None:
    file = tmp_path / "prs.csv"
    file.write_text(
        "repo,number,author,merged_at,title,head_ref\n"
        "acme/widgets,1,ada-gh,2026-10-01T09:00:00Z,First,feat-1\n"
        "acme/gadgets,1,grace-gh,2026-10-02,Other repo same number,\n"
        "acme/gadgets,2,grace-gh,2026-10-02T01:30:00+02:00,Offset,\n"
    )
    assert cli.ok(f"prs import --csv {file}").strip() == "3 new, 0 unchanged"
    assert cli.ok(f"prs import --csv {file}").strip() == "0 new, 3 unchanged"
    rows = {(r["repo"], r["number"]): r for r in store.merged_pull_requests()}
    assert rows[("acme/gadgets", 2)]["merged_at"] == "2026-10-01T23:30:00.000000Z"  # +02:00 -> UTC
    assert rows[("acme/gadgets", 1)]["merged_at"] == "2026-10-02T00:00:00.000000Z"
    bad = tmp_path / "bad.csv"
    bad.write_text("repo,number,author\nacme/widgets,1,ada\n")
    result = cli.runner.invoke(cli.app, ["prs", "import", "--csv", str(bad)])
    assert result.exit_code == 1 and "merged_at" in result.output


def test_unmapped_authors_are_listed_and_reported(cli: Cli, store: Store, tmp_path: Path) -> None:
    file = tmp_path / "prs.json"
    file.write_text(gh_json([(1, "Ada-GH", "2026-10-01T09:00:00Z"), (2, "stranger", "2026-10-02T09:00:00Z")]))
    cli.ok(f"prs import {file}")
    other = tmp_path / "other.json"
    other.write_text(gh_json([(5, "visitor", "2026-10-03T09:00:00Z")], repo="acme/mobile-app"))
    cli.ok(f"prs import {other}")
    cli.ok("identities map --github ada-gh --user ada")
    cli.ok("identities repo --repo Acme/Mobile-App --team mobile")
    assert [r["login"] for r in cli.json("prs unmapped")] == ["stranger"]
    assert "stranger" in cli.ok("prs unmapped")
    listed = {r["number"]: (r["team"], r["mapped_by"]) for r in cli.json("prs list")}
    assert listed == {1: ("platform", "author"), 2: ("unmapped", "unmapped"), 5: ("mobile", "repo")}
    rows = cli.json("report cost-per-pr --months 1 --month 2026-10")
    by_team = {r["team"]: r["merged_prs"] for r in rows}
    assert by_team == {"mobile": 1, "platform": 1, "unmapped": 1}
    assert [r["team"] for r in rows][-1] == "unmapped"


def test_cost_per_pr_matches_the_brief_and_shows_the_trend(cli: Cli, store: Store, tmp_path: Path) -> None:
    cli.ok("identities map --github ada-gh --user ada")
    cli.ok("identities map --github grace-gh --user grace")
    prs = [(n, "ada-gh", f"2026-10-{n % 28 + 1:02d}T12:00:00Z") for n in range(1, 86)]  # 85 in October
    prs += [(n, "ada-gh", "2026-09-15T12:00:00Z") for n in range(100, 110)]  # 10 in September
    prs += [(n, "grace-gh", "2026-10-20T12:00:00Z") for n in range(200, 220)]  # 20 in October
    prs += [(300, "ada-gh", "2026-11-01T00:00:00Z")]  # November: outside the window
    file = tmp_path / "prs.json"
    file.write_text(gh_json(prs))
    assert cli.ok(f"prs import {file}").strip() == "116 new, 0 unchanged"
    # platform: $3,200 in October (in uneven parts), $1,000 in September; mobile: $1,100 in October.
    spend(store, "platform", "2026-10-01T00:00:00.000000Z", 1_000 * USD + 1)
    spend(store, "platform", "2026-10-31T23:59:59.999999Z", 2_200 * USD - 1)
    spend(store, "platform", "2026-09-10T08:00:00.000000Z", 1_000 * USD)
    spend(store, "platform", "2026-11-01T00:00:00.000000Z", 5_000 * USD)  # outside
    spend(store, "mobile", "2026-10-05T08:00:00.000000Z", 1_100 * USD)
    rows = cli.json("report cost-per-pr --months 2 --month 2026-10")
    got = {(r["team"], r["month"]): r for r in rows}
    october = got[("platform", "2026-10")]
    assert october["spend_usd"] == "3200" and october["merged_prs"] == 85
    assert Decimal(october["cost_per_pr_usd"]) == Decimal(3200) / Decimal(85)
    assert october["cost_per_pr_usd"].startswith("37.647058823529411764705882")
    assert october["cost_per_pr_usd_rounded"] == "37.65"
    assert got[("platform", "2026-09")]["cost_per_pr_usd"] == "100"
    assert october["change_pct"] == "-62.4"  # 37.647... against 100
    assert got[("mobile", "2026-10")]["cost_per_pr_usd_rounded"] == "55.00"
    assert got[("mobile", "2026-09")]["cost_per_pr_usd"] is None  # no PRs: no ratio, no change
    assert got[("mobile", "2026-10")]["change_pct"] is None
    table = cli.ok("report cost-per-pr --months 2 --month 2026-10")
    assert "37.65" in table and "55.00" in table and "-62.4%" in table and "UTC months" in table
    assert "37.647" not in table
    parsed = list(
        csv.DictReader(io.StringIO(cli.ok("report cost-per-pr --months 2 --month 2026-10 --format csv")))
    )
    assert parsed[0].keys() >= {"team", "month", "spend_usd", "merged_prs", "cost_per_pr_usd", "change_pct"}
    assert len(parsed) == 4


def test_cost_per_pr_by_repo_and_use_case(cli: Cli, store: Store, tmp_path: Path) -> None:
    file = tmp_path / "prs.json"
    file.write_text(gh_json([(1, "a", "2026-10-01T09:00:00Z"), (2, "a", "2026-10-02T09:00:00Z")]))
    cli.ok(f"prs import {file}")
    spend(store, "platform", "2026-10-03T00:00:00.000000Z", 30 * USD, tags={"repo": "Acme/Widgets"})
    spend(store, "platform", "2026-10-04T00:00:00.000000Z", 10 * USD, use_case="code-review")
    by_repo = cli.json("report cost-per-pr --months 1 --month 2026-10 --by repo")
    assert [(r["repo"], r["merged_prs"], r["cost_per_pr_usd"]) for r in by_repo] == [
        ("acme/widgets", 2, "15")
    ]
    by_use = {
        r["use_case"]: r["cost_per_pr_usd"]
        for r in cli.json("report cost-per-pr --months 1 --month 2026-10 --by use_case")
    }
    assert by_use == {"code-review": "5", "untagged": "15"}


def test_spend_per_pr_from_pr_and_branch_tags(cli: Cli, store: Store, tmp_path: Path) -> None:
    file = tmp_path / "prs.json"
    file.write_text(gh_json([(7, "ada-gh", "2026-10-05T09:00:00Z"), (8, "ada-gh", "2026-10-06T09:00:00Z")]))
    cli.ok(f"prs import {file}")
    gadgets = tmp_path / "gadgets.json"
    gadgets.write_text(gh_json([(7, "grace-gh", "2026-10-05T09:00:00Z")], repo="acme/gadgets"))
    cli.ok(f"prs import {gadgets}")
    cli.ok("identities map --github ada-gh --user ada")
    spend(store, "platform", "2026-10-01T01:00:00.000000Z", 2 * USD, tags={"pr": "acme/widgets#7"})
    spend(store, "platform", "2026-10-01T02:00:00.000000Z", 3 * USD, tags={"pr": "7", "repo": "acme/widgets"})
    spend(store, "platform", "2026-10-01T03:00:00.000000Z", 4 * USD, tags={"branch": "branch-8"})
    spend(
        store, "platform", "2026-10-01T04:00:00.000000Z", 1 * USD, tags={"pr": "7"}
    )  # two PRs #7: ambiguous
    spend(store, "platform", "2026-10-01T05:00:00.000000Z", 1 * USD, tags={"pr": "999"})
    result = cli.json("report cost-per-pr --per-pr --months 1 --month 2026-10")
    assert [(r["repo"], r["number"], r["spend_usd"], r["calls"], r["team"]) for r in result["prs"]] == [
        ("acme/widgets", 7, "5", 2, "platform"),
        ("acme/widgets", 8, "4", 1, "platform"),
    ]
    assert (result["unmatched_calls"], result["unmatched_usd"]) == (2, "2")
    assert "match no single merged PR" in cli.ok("report cost-per-pr --per-pr --months 1 --month 2026-10")


def test_identity_mapping_errors_are_one_line(cli: Cli) -> None:
    result = cli.runner.invoke(cli.app, ["identities", "map", "--github", "x", "--user", "nobody"])
    assert result.exit_code == 1 and "no user named 'nobody'" in result.output
    result = cli.runner.invoke(cli.app, ["identities", "repo", "--repo", "not a repo", "--team", "mobile"])
    assert result.exit_code == 1 and "OWNER/NAME" in result.output


# --- pure parts -------------------------------------------------------------------------------
def test_exact_division_rounding_and_months() -> None:
    exact = cpp.usd_per_pr(3_200 * USD, 85)
    assert exact is not None and str(cpp.round_cents(exact)) == "37.65"
    assert str(exact) == "37.64705882352941176470588235"
    assert cpp.usd_per_pr(1_100 * USD, 20) == Decimal(55)
    assert cpp.usd_per_pr(5 * USD, 0) is None
    assert cpp.month_window(3, "2026-01") == ["2025-11", "2025-12", "2026-01"]
    assert cpp.window_bounds(["2026-12"]) == ("2026-12-01T00:00:00.000000Z", "2027-01-01T00:00:00.000000Z")
    with pytest.raises(ValueError, match="YYYY-MM"):
        cpp.month_window(1, "2026-13")
    rows = cpp.cost_per_pr(
        {("t", "2026-01"): 100 * USD, ("t", "2026-02"): 150 * USD},
        {("t", "2026-01"): 4, ("t", "2026-02"): 5},
        ["2026-01", "2026-02"],
    )
    assert [r.view("team")["change_pct"] for r in rows] == [None, "20.0"]  # 25 -> 30


def test_parsers_reject_bad_input_with_the_line() -> None:
    with pytest.raises(ValueError, match="CSV line 2"):
        parse_csv("repo,number,author,merged_at\nacme/w,abc,ada,2026-10-01\n")
    with pytest.raises(ValueError, match="not JSON"):
        parse_gh_json("{", "acme/w")
    with pytest.raises(ValueError, match="no --repo"):
        parse_gh_json('[{"number": 1, "mergedAt": "2026-10-01T00:00:00Z", "author": {"login": "a"}}]', None)
