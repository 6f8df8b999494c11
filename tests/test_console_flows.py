"""The governance flows behind the console, over real HTTP: exemptions end to end (a lead asks, the
requester cannot approve, an approver decides, both are mailed, what ran under it), and team leads
paged for their team's alerts without a route in the alerts file."""

from __future__ import annotations

from email import message_from_bytes
from pathlib import Path

from spendgate.admin.budget_service import create_budget
from spendgate.alerts.channels import AlertMessage
from spendgate.alerts.config import parse_alerts_config
from spendgate.alerts.people import with_leads
from spendgate.fake_upstream import FakeUpstream
from spendgate.pricing import format_usd
from tests.console_env import csrf_of, running_console
from tests.mailbox import Mailbox

JSON = {"accept": "application/json"}


def _alerts_file(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "alerts.toml"
    path.write_text(
        f'[channels.mail]\ntype = "email"\nhost = "127.0.0.1"\nport = {port}\n'
        'from = "spendgate@acme.example"\nto = "finops@acme.example"\nstarttls = false\n'
    )
    return path


def _recipients(box: Mailbox) -> list[str]:
    return [rcpt for envelope in box.messages for rcpt in envelope.rcpt_tos]


def test_exemption_end_to_end(tmp_path: Path, fake: FakeUpstream, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    alerts = _alerts_file(tmp_path, port)
    with running_console(tmp_path / "gw", fake, alerts_file=alerts, alerts_interval_s=3600) as console:
        store = console.gw.store
        budget = create_budget(store, name="team-platform", scope="team", value="platform", amount_usd="1")
        create_budget(store, name="team-payments", scope="team", value="payments", amount_usd="1")
        with console.client("ada@acme.example") as lead:
            page = lead.get("/ui/exemptions")
            assert page.status_code == 200 and "team-platform" in page.text
            assert "team-payments" not in page.text.split('id="request"')[1]  # only her team's budgets
            form = {
                "budget": budget.id,
                "amount": "25",
                "hours": "48",
                "use_case": "autonomous-agent",
                "reason": "launch week",
                "csrf": csrf_of(page.text),
            }
            made = lead.post("/ui/exemptions", data=form)
            assert made.status_code == 201, made.text
            exemption = store.list_exemptions()[0]
            assert exemption.requested_by == "ada@acme.example" and exemption.status == "pending"
            # The requester can never approve: no button, and a forged post is refused.
            assert f"/ui/exemptions/{exemption.id}/decide" not in lead.get("/ui/exemptions").text
            token = csrf_of(lead.get("/ui/exemptions").text)
            denied = lead.post(
                f"/ui/exemptions/{exemption.id}/decide", data={"action": "approve", "csrf": token}
            )
            assert denied.status_code == 403
        with console.client("grace@acme.example") as other_lead:
            assert exemption.id not in other_lead.get("/ui/exemptions").text
            assert other_lead.get(f"/ui/exemptions/{exemption.id}").status_code == 403
            other = {
                "budget": budget.id,
                "amount": "5",
                "hours": "1",
                "reason": "x",
                "csrf": csrf_of(other_lead.get("/ui/exemptions").text),
            }
            assert other_lead.post("/ui/exemptions", data=other).status_code == 403
        assert store.list_exemptions()[0].status == "pending"
        with console.client("vp@acme.example") as approver:
            page = approver.get("/ui/exemptions")
            assert f"/ui/exemptions/{exemption.id}/decide" in page.text
            decided = approver.post(
                f"/ui/exemptions/{exemption.id}/decide",
                data={"action": "approve", "note": "ok for the launch", "csrf": csrf_of(page.text)},
            )
            assert decided.status_code == 200, decided.text
        approved = store.list_exemptions()[0]
        assert (approved.status, approved.decided_by, approved.decision_note) == (
            "approved",
            "vp@acme.example",
            "ok for the launch",
        )
        # Calls inside the window: what ran under it (only the exemption's use case).
        console.call("linus@acme.example", "autonomous-agent", "agent-1")
        console.call("ada@acme.example", "autonomous-agent", "agent-2")
        console.call("linus@acme.example", "code-review", "rev-1")
        rows = [r for r in console.rows(team_id=budget.scope_value) if r["use_case"] == "autonomous-agent"]
        with console.client("ada@acme.example") as lead:
            detail = lead.get(f"/ui/exemptions/{exemption.id}", headers=JSON).json()
        assert detail["exemption"]["state"] == "active"
        assert detail["ran_total_usd"] == format_usd(sum(r["cost_nanos"] for r in rows))
        assert {r["session_id"] for r in detail["ran_under_it"]} == {"agent-1", "agent-2"}
        actions = [(e.action, e.actor) for e in store.list_audit(action="exemption")]
        assert ("exemption.request", "ada@acme.example") in actions
        assert ("exemption.approve", "vp@acme.example") in actions
    # Requester and approver were told, by email through the alerts file's mail channel.
    rcpts = _recipients(box)
    assert rcpts.count("ada@acme.example") == 2  # requested, approved
    assert rcpts.count("vp@acme.example") == 2
    subjects = [message_from_bytes(e.content)["Subject"] for e in box.messages]
    assert any("approved" in str(s) for s in subjects)


def test_team_leads_are_paged_for_their_team(tmp_path: Path, fake: FakeUpstream) -> None:
    config = parse_alerts_config(
        {
            "channels": {
                "mail": {
                    "type": "email",
                    "host": "127.0.0.1",
                    "from": "s@acme.example",
                    "to": "ops@acme.example",
                },
                "chat": {"type": "slack", "url": "http://127.0.0.1:9/slack"},
            },
            "routes": {"default": ["mail"]},
        }
    )
    with running_console(tmp_path, fake) as console:
        store = console.gw.store
        platform = next(t for t in store.list_teams() if t.name == "platform")
        store.set_user_slack("ada@acme.example", "U0ADA")
        anomaly = AlertMessage(
            alert_id="alr_1",
            kind="anomaly",
            action="trigger",
            title="Spend anomaly",
            summary="team platform 4x",
            dedup_key="k",
            group="team:platform",
            details={"group_by": "team", "group": platform.id},
        )
        other = AlertMessage(
            alert_id="alr_2",
            kind="anomaly",
            action="trigger",
            title="Spend anomaly",
            summary="use case x",
            dedup_key="k2",
            group="use_case:x",
            details={"group_by": "use_case", "group": "x"},
        )
        planned = with_leads(store, config, [(anomaly, config.channels_for(platform.id)), (other, [])])
    # The file's route stays; ada (lead, Slack id set) is mentioned in Slack; nobody for a use case.
    assert [c.name for c in planned[0][1]] == ["mail"]
    assert len(planned) == 3
    msg, channels = planned[2]
    assert channels[0].type == "slack" and msg.summary.startswith("<@U0ADA> ")


def test_oidc_sign_in_with_pkce_and_groups(tmp_path: Path, fake: FakeUpstream) -> None:
    import httpx

    from tests.oidc_env import CLIENT_ID, console_settings, oidc_provider

    users = {
        "u-ada": {"email": "Ada@acme.example", "email_verified": True, "groups": ["eng", "finops"]},
        "u-stranger": {"email": "stranger@elsewhere.example", "groups": []},
    }
    with oidc_provider(users) as provider:
        settings = console_settings(provider, ui_group_roles="finops=finance")
        with running_console(tmp_path, fake, **settings) as console, console.client() as browser:
            start = browser.get("/ui/signin/oidc?next=/ui/org")
            assert start.status_code == 303
            authorize = start.headers["location"]
            query = authorize.split("?", 1)[1]
            assert authorize.startswith(provider.issuer) and "code_challenge_method=S256" in query
            assert f"client_id={CLIENT_ID}" in query and "nonce=" in query and "state=" in query
            with httpx.Client() as idp:
                back = idp.post(authorize, data={"sub": "u-ada"})
            assert back.status_code == 302
            callback = back.headers["location"]
            assert callback.startswith(f"{console.url}/ui/signin/oidc/callback?")
            done = browser.get(callback.removeprefix(console.url))
            assert done.status_code == 303 and done.headers["location"] == "/ui/org", done.text
            assert len(provider.pkce.checked) == 1  # the verifier matched the challenge
            # ada is a lead by grant; finance comes from her 'finops' group, for this session.
            org = browser.get("/ui/org", headers=JSON)
            assert org.status_code == 200
            assert browser.get("/ui/me", headers=JSON).json()["user"]["email"] == "ada@acme.example"
            # The callback's state works once.
            assert browser.get(callback.removeprefix(console.url)).status_code == 401
            signins = console.gw.store.list_audit(action="signin")
            assert any(e.target == "ada@acme.example" and e.details.get("method") == "oidc" for e in signins)
            # An account the identity provider knows but Spendgate does not: refused, and logged.
            with console.client() as other:
                start = other.get("/ui/signin/oidc")
                with httpx.Client() as idp:
                    back = idp.post(start.headers["location"], data={"sub": "u-stranger"})
                refused = other.get(back.headers["location"].removeprefix(console.url))
                assert refused.status_code == 403 and "stranger@elsewhere.example" in refused.text
                assert other.get("/ui/me", headers=JSON).status_code == 401
            refusals = console.gw.store.list_audit(action="signin.refused")
            assert [e.target for e in refusals] == ["stranger@elsewhere.example"]


def test_routing_policy_loads_are_audited(tmp_path: Path, fake: FakeUpstream) -> None:
    from importlib.resources import files

    from spendgate.app import create_app
    from tests.conftest import gateway_settings

    policy = tmp_path / "policy.toml"
    default = next(p for p in files("spendgate.routing").iterdir() if p.name.endswith(".toml"))
    policy.write_text(default.read_text())
    settings = gateway_settings(tmp_path, fake, routing_policy_file=policy)

    def loads() -> list[str]:
        app = create_app(settings)
        store = app.state.gateway.store
        entries = [e.details["sha256"] for e in store.list_audit(action="routing.load")]
        store.close()
        return entries

    assert len(loads()) == 1
    assert len(loads()) == 1  # a restart with the same file adds nothing
    policy.write_text(policy.read_text() + "\n# tuned\n")
    assert len(loads()) == 2
