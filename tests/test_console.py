"""The web console over real HTTP on loopback: sign-in (one-time links, trusted header), sessions,
CSRF, security headers, My usage against the ledger, keys, roles and the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import anthropic
import pytest

from spendgate.console.links import mint
from spendgate.fake_upstream import FakeUpstream
from spendgate.pricing import format_usd
from tests.console_env import SETUP, Console, csrf_of, running_console

JSON = {"accept": "application/json"}


@pytest.fixture
def console(tmp_path: Path, fake: FakeUpstream) -> Iterator[Console]:
    with running_console(tmp_path, fake) as running:
        yield running


def test_pages_need_sign_in(console: Console) -> None:
    with console.client() as anon:
        r = anon.get("/ui/me")
        assert r.status_code == 303 and r.headers["location"] == "/ui/signin?next=/ui/me"
        assert anon.get("/ui/me", headers=JSON).status_code == 401
        signin = anon.get("/ui/signin")
        assert signin.status_code == 200 and "spendgate console link" in signin.text


def test_link_signs_in_once_and_sets_a_safe_cookie(console: Console) -> None:
    token = console.link("linus@acme.example").split("token=", 1)[1]
    with console.client() as browser:
        # Opening the link only shows a button: a mail scanner following it does not use it up.
        assert 'name="token"' in browser.get(f"/ui/signin/link?token={token}").text
        r = browser.post("/ui/signin/link", data={"token": token})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/ui" in cookie
        assert "secure" not in cookie  # plain HTTP on loopback; Secure is set over TLS
        me = browser.get("/ui/me", headers=JSON)
        assert me.status_code == 200 and me.json()["user"]["email"] == "linus@acme.example"
    with console.client() as other:
        again = other.post("/ui/signin/link", data={"token": token})
        assert again.status_code == 401 and "already used or expired" in again.text


def test_expired_link_is_refused(console: Console) -> None:
    old = datetime.now(UTC) - timedelta(minutes=16)
    url, _, _ = mint(console.gw.store, SETUP, "linus@acme.example", console.url, old)
    with console.client() as browser:
        r = browser.post("/ui/signin/link", data={"token": url.split("token=", 1)[1]})
        assert r.status_code == 401


def test_security_headers_and_csrf(console: Console) -> None:
    with console.client("linus@acme.example") as browser:
        page = browser.get("/ui/me")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        # A state change without the session's CSRF token is refused, and changes nothing.
        before = len(console.gw.store.list_keys())
        assert browser.post("/ui/me/keys", data={"name": "x"}).status_code == 403
        assert browser.post("/ui/me/keys", data={"name": "x", "csrf": "forged"}).status_code == 403
        token = csrf_of(page.text)
        cross = browser.post(
            "/ui/me/keys", data={"name": "x", "csrf": token}, headers={"origin": "https://evil.example"}
        )
        assert cross.status_code == 403
        assert len(console.gw.store.list_keys()) == before
        # Signing out ends the session on the server, not just in this browser.
        cookie = browser.cookies.get("spendgate_session")
        assert browser.post("/ui/signout", data={"csrf": token}).status_code == 303
    with console.client() as replay:
        replay.cookies.set("spendgate_session", str(cookie), path="/ui")
        assert replay.get("/ui/me", headers=JSON).status_code == 401


def test_my_usage_equals_the_ledger(console: Console) -> None:
    for i in range(3):
        console.call("linus@acme.example", "code-review", f"sess-{i % 2}")
    console.call("linus@acme.example", "autocomplete", "sess-0", model="claude-sonnet-4-6")
    console.call("ada@acme.example", "code-review", "sess-ada")  # someone else's: not on linus's page
    rows = console.rows(user_id=next(u.id for u in console.gw.store.list_users() if u.name == "linus"))
    assert len(rows) == 4
    with console.client("linus@acme.example") as browser:
        me = browser.get("/ui/me", headers=JSON).json()
    assert me["month_to_date_usd"] == format_usd(sum(r["cost_nanos"] for r in rows))
    assert me["requests"] == 4
    assert sum(Decimal(d["cost_usd"]) for d in me["daily"]) == Decimal(me["month_to_date_usd"])
    by_use_case = {r["use_case"]: r for r in me["by_use_case"]}
    review = [r for r in rows if r["use_case"] == "code-review"]
    assert by_use_case["code-review"]["cost_usd"] == format_usd(sum(r["cost_nanos"] for r in review))
    assert {r["model"] for r in me["by_model"]} == {r["upstream_model"] for r in rows}
    sessions = {s["session_id"]: s for s in me["sessions"]}
    assert set(sessions) == {"sess-0", "sess-1"} and sessions["sess-0"]["requests"] == 3


def test_my_usage_tells_declared_from_inferred(console: Console) -> None:
    console.call("linus@acme.example", "autocomplete", "sess-0")  # declared
    console.call("linus@acme.example", None, "sess-0")  # none declared: a short SDK call, autocomplete-shaped
    rows = console.rows(use_case="autocomplete")
    assert sorted(r["use_case_source"] for r in rows) == ["header", "inferred:autocomplete-shaped"]
    inferred = next(r for r in rows if r["use_case_source"] != "header")
    with console.client("linus@acme.example") as browser:
        me = browser.get("/ui/me", headers=JSON).json()
        html = browser.get("/ui/me").text
    [row] = [r for r in me["by_use_case"] if r["use_case"] == "autocomplete"]
    assert row["requests"] == 2 and row["inferred_usd"] == format_usd(inferred["cost_nanos"])
    assert ">inferred</th>" in html


def test_budgets_on_my_usage(console: Console) -> None:
    from spendgate.admin.budget_service import create_budget

    store = console.gw.store
    create_budget(store, name="team-platform", scope="team", value="platform", amount_usd="0.0001")
    create_budget(store, name="team-payments", scope="team", value="payments", amount_usd="100")
    console.call("linus@acme.example", "code-review", "s1")
    console.rows()
    with console.client("linus@acme.example") as browser:
        me = browser.get("/ui/me", headers=JSON).json()
    budgets = {b["name"]: b for b in me["budgets"]}
    assert set(budgets) == {"team-platform"}  # not another team's budget
    line = budgets["team-platform"]
    assert Decimal(line["spent_usd"]) > 0 and line["tier_reached"] is not None
    assert line["reset_at"].startswith(f"{datetime.now(UTC) + timedelta(days=32):%Y}") or line["reset_at"]
    assert "hard stop" in line["outlook"] or line["outlook"] == "on track"


def test_key_created_in_the_console_is_shown_once_and_works(console: Console) -> None:
    with console.client("linus@acme.example") as browser:
        token = csrf_of(browser.get("/ui/me").text)
        r = browser.post("/ui/me/keys", data={"name": "ci-bot", "use_case": "ci", "csrf": token})
        assert r.status_code == 201
        secret = r.text.split('class="secret" readonly value="', 1)[1].split('"', 1)[0]
        assert secret.startswith("sk-sg-")
        again = browser.get("/ui/me")
        assert secret not in again.text and "ci-bot" in again.text
        sdk = anthropic.Anthropic(base_url=console.url, api_key=secret, max_retries=0)
        sdk.messages.create(
            model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
        sdk.close()
        key = next(k for k in console.gw.store.list_keys() if k.name == "ci-bot")
        assert console.rows(key_id=key.id)[0]["use_case"] == "ci"
        # Revoke it: the next call with it is refused.
        token = csrf_of(again.text)
        assert browser.post(f"/ui/me/keys/{key.id}/revoke", data={"csrf": token}).status_code == 200
        sdk = anthropic.Anthropic(base_url=console.url, api_key=secret, max_retries=0)
        with pytest.raises(anthropic.AuthenticationError):
            sdk.messages.create(
                model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "x"}]
            )
        sdk.close()
        # Someone else's key cannot be revoked from my page.
        ada_key = next(k for k in console.gw.store.list_keys() if k.name == "ada-laptop")
        token = csrf_of(browser.get("/ui/me").text)
        assert browser.post(f"/ui/me/keys/{ada_key.id}/revoke", data={"csrf": token}).status_code == 404
    actions = [(e.action, e.via, e.actor) for e in console.gw.store.list_audit(action="key")]
    assert ("key.create", "console", "linus@acme.example") in actions
    assert ("key.revoke", "console", "linus@acme.example") in actions


def test_trusted_header_only_from_trusted_proxies(tmp_path: Path, fake: FakeUpstream) -> None:
    with running_console(tmp_path, fake, ui_auth="header") as console, console.client() as proxy:
        r = proxy.get("/ui/me", headers={**JSON, "X-Forwarded-Email": "linus@acme.example"})
        assert r.status_code == 200 and r.json()["user"]["email"] == "linus@acme.example"
        iap = {**JSON, "X-Forwarded-Email": "accounts.google.com:Ada@Acme.example"}
        assert proxy.get("/ui/me", headers=iap).json()["user"]["email"] == "ada@acme.example"
        unknown = proxy.get("/ui/me", headers={**JSON, "X-Forwarded-Email": "nobody@acme.example"})
        assert unknown.status_code == 401
    with (
        running_console(
            tmp_path / "other", fake, ui_auth="header", ui_trusted_proxies="10.0.0.0/8"
        ) as console,
        console.client() as attacker,
    ):
        # Loopback is not a trusted proxy here: the header is ignored, as if absent.
        r = attacker.get("/ui/me", headers={**JSON, "X-Forwarded-Email": "root@acme.example"})
        assert r.status_code == 401
        signins = console.gw.store.list_audit(action="signin")
        assert not any(e.target == "root@acme.example" for e in signins)


def test_roles_cli_api_and_audit(console: Console, tmp_path: Path) -> None:
    import httpx
    from typer.testing import CliRunner

    from spendgate.cli import build_app
    from tests.conftest import MASTER_KEY

    db = console.gw.settings.database_url
    runner = CliRunner(env={"SPENDGATE_DATABASE_URL": db, "SPENDGATE_ACTOR": "ops@acme.example"})
    app = build_app()
    out = runner.invoke(app, ["roles", "grant", "--user", "linus@acme.example", "--role", "finance"])
    assert out.exit_code == 0, out.output
    bad = runner.invoke(app, ["roles", "grant", "--user", "linus@acme.example", "--role", "lead"])
    assert bad.exit_code == 1 and "--team" in bad.output
    listed = runner.invoke(app, ["roles", "list", "--user", "linus", "--format", "json"])
    assert '"finance"' in listed.stdout
    key = runner.invoke(app, ["keys", "create", "--name", "k2", "--team", "platform"])
    assert key.exit_code == 0, key.output
    auth = {"authorization": f"Bearer {MASTER_KEY}", "x-spendgate-actor": "vp@acme.example"}
    with httpx.Client(base_url=console.url) as http:
        r = http.post("/admin/roles/revoke", json={"user": "linus", "role": "finance"}, headers=auth)
        assert r.status_code == 200, r.text
        r = http.post("/admin/keys", json={"name": "k3", "team": "platform"}, headers=auth)
        assert r.status_code == 201
        secret = r.json()["key"]
        audit = http.get("/admin/audit", headers=auth).json()
    assert secret not in str(audit)
    seen = {(a["action"], a["via"], a["actor"]) for a in audit}
    assert ("role.grant", "cli", "ops@acme.example") in seen
    assert ("key.create", "cli", "ops@acme.example") in seen
    assert ("role.revoke", "api", "master-key (vp@acme.example)") in seen
    assert ("key.create", "api", "master-key (vp@acme.example)") in seen
    with console.client("linus@acme.example") as browser:
        assert "finance" not in browser.get("/ui/me").text.split("</header>")[0]


def test_team_page_for_its_leads_and_org_roles_only(console: Console) -> None:
    store = console.gw.store
    platform = next(t for t in store.list_teams() if t.name == "platform")
    payments = next(t for t in store.list_teams() if t.name == "payments")
    console.call("linus@acme.example", "code-review", "s1")
    console.call("ada@acme.example", "autonomous-agent", "s2", model="claude-sonnet-4-6")
    console.call("grace@acme.example", "code-review", "s3")
    rows = console.rows(team_id=platform.id)
    with console.client("ada@acme.example") as lead:
        page = lead.get(f"/ui/teams/{platform.id}", headers=JSON)
        assert page.status_code == 200, page.text
        data = page.json()
        assert data["month_to_date_usd"] == format_usd(sum(r["cost_nanos"] for r in rows))
        assert {u["user"] for u in data["by_user"]} == {"linus", "ada"}
        assert data["leads"] == ["ada@acme.example"]
        assert lead.get("/ui/teams/platform").status_code == 200  # by name too
        # Another team's page, or the org page, by editing the URL: 403, in HTML and JSON.
        assert lead.get(f"/ui/teams/{payments.id}").status_code == 403
        assert lead.get("/ui/teams/payments", headers=JSON).json()["error"]["type"] == "permission_error"
        assert lead.get("/ui/org").status_code == 403
        assert lead.get("/ui/org/focus.csv").status_code == 403
    with console.client("linus@acme.example") as engineer:
        assert engineer.get(f"/ui/teams/{platform.id}").status_code == 403
    for email in ("vp@acme.example", "cfo@acme.example", "root@acme.example"):
        with console.client(email) as org_wide:
            assert org_wide.get(f"/ui/teams/{payments.id}").status_code == 200
            org = org_wide.get("/ui/org", headers=JSON)
            assert org.status_code == 200, org.text
    everything = console.rows()
    data = org.json()
    assert data["total_usd"] == format_usd(sum(r["cost_nanos"] for r in everything))
    assert {t["team"] for t in data["teams"]} == {"platform", "payments"}
    assert data["chargeback"]["total_usd"] == data["total_usd"]
    with console.client("cfo@acme.example") as finance:
        csv_text = finance.get(f"/ui/org/focus.csv?month={data['month']}")
        assert csv_text.status_code == 200 and "BilledCost" in csv_text.text.splitlines()[0]
        assert "attachment" in csv_text.headers["content-disposition"]
        assert finance.get("/ui/org?month=nope").status_code == 400


def test_audit_and_rollout_pages(console: Console) -> None:
    from datetime import UTC, datetime, timedelta

    from spendgate.models import LedgerRow

    store = console.gw.store
    platform = next(t for t in store.list_teams() if t.name == "platform")
    # platform: 70 days of history; payments: 10
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    rows = []
    for team, days in ((platform, 70), (next(t for t in store.list_teams() if t.name == "payments"), 10)):
        for d in range(1, days + 1):
            started = (now - timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            rows.append(
                LedgerRow(
                    request_id=f"r-{team.name}-{d}",
                    provider="anthropic",
                    endpoint="/v1/messages",
                    started_at=started,
                    ended_at=started,
                    status_code=200,
                    status="ok",
                    use_case="code-review",
                    team_id=team.id,
                    org_id=team.org_id,
                    cost_nanos=2_000_000_000,
                )
            )
    store.insert_ledger_rows(rows)
    with console.client("vp@acme.example") as vp:
        rollout = vp.get("/ui/rollout", headers=JSON).json()
        audit = vp.get("/ui/audit?action=role", headers=JSON).json()
        assert vp.get("/ui/audit").status_code == 200 and vp.get("/ui/rollout").status_code == 200
    teams = {t["team"]: t for t in rollout["teams"]}
    assert teams["platform"]["ready"] and teams["platform"]["days_of_history"] == 71
    assert not teams["payments"]["ready"] and teams["payments"]["stage"] == "observing (11/60 days)"
    recommended = teams["platform"]["recommended"]
    assert Decimal(recommended["hard_usd"]) == 2 * Decimal(recommended["baseline_usd"])
    assert {e["action"] for e in audit["entries"]} == {"role.grant"}
    assert {e["target"] for e in audit["entries"]} >= {"ada@acme.example", "vp@acme.example"}
    with console.client("grace@acme.example") as lead:
        mine = lead.get("/ui/rollout", headers=JSON).json()
        assert [t["team"] for t in mine["teams"]] == ["payments"]
        assert lead.get("/ui/audit").status_code == 403
    with console.client("linus@acme.example") as engineer:
        assert engineer.get("/ui/rollout").status_code == 403
        assert engineer.get("/ui/exemptions").status_code == 403


def test_sessions_expire_and_pages_hold_no_secrets(console: Console) -> None:
    from spendgate.console import sessions
    from tests.conftest import PROVIDER_ANTHROPIC_KEY, PROVIDER_OPENAI_KEY

    store = console.gw.store
    root = next(u for u in store.list_users() if u.name == "root")
    old, _ = sessions.start(store, root.id, "link", (), 12, datetime.now(UTC) - timedelta(hours=13))
    with console.client() as stale:
        stale.cookies.set("spendgate_session", old, path="/ui")
        assert stale.get("/ui/me", headers=JSON).status_code == 401
    console.call("root@acme.example", "code-review", "s1")
    hashes = [k.key_hash for k in store.list_keys()]
    with console.client("root@acme.example") as admin:
        for path in ("/ui/me", "/ui/teams/platform", "/ui/org", "/ui/exemptions", "/ui/audit", "/ui/rollout"):
            for accept in ("text/html", "application/json"):
                text = admin.get(path, headers={"accept": accept}).text
                assert PROVIDER_ANTHROPIC_KEY not in text and PROVIDER_OPENAI_KEY not in text, path
                assert not any(h in text for h in hashes), path
                assert not any(secret in text for secret in console.keys.values()), path
