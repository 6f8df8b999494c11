"""The console in a real browser: Playwright driving Debian's Chromium against the gateway on loopback.

Sign-in by each method (one-time link, trusted header, OIDC), My usage against the ledger, an
exemption from request to approval (the requester cannot approve), 403 on another team's page, and
a key created in the page, shown once, working on the next call.

CI installs Chromium (`.ci/run`) and sets SPENDGATE_TEST_BROWSER=1, so these fail there rather than
skip when the browser is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import pytest

from spendgate.admin.budget_service import create_budget
from spendgate.fake_upstream import FakeUpstream
from spendgate.pricing import format_usd
from tests.console_env import Console, running_console

BROWSER_ENV = "SPENDGATE_TEST_BROWSER"
CHROMIUM = os.environ.get("SPENDGATE_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        if os.environ.get(BROWSER_ENV):
            pytest.fail(
                f"{BROWSER_ENV} is set but there is no Chromium at {CHROMIUM} (apt-get install chromium)"
            )
        pytest.skip(
            f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium; CI sets {BROWSER_ENV})"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def console(tmp_path: Path, fake: FakeUpstream) -> Iterator[Console]:
    with running_console(tmp_path, fake) as running:
        yield running


def sign_in(browser: Any, console: Console, email: str) -> Any:
    """A new browser page signed in through a one-time link, as a person would: open it, press the button."""
    page = browser.new_page()
    page.goto(console.link(email))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{console.url}/ui/me")
    return page


def test_link_sign_in_and_my_usage_equals_the_ledger(browser: Any, console: Console) -> None:
    for i in range(3):
        console.call("linus@acme.example", "code-review", f"s{i}")
    console.call("linus@acme.example", "autonomous-agent", "s9", model="claude-sonnet-4-6")
    linus = next(u for u in console.gw.store.list_users() if u.name == "linus")
    total = sum(r["cost_nanos"] for r in console.rows(user_id=linus.id))
    page = sign_in(browser, console, "linus@acme.example")
    assert page.get_by_role("heading", name="My usage", exact=True).is_visible()
    shown = page.locator("#mtd").inner_text()
    exact = Decimal(format_usd(total))
    assert shown == f"${exact:,.2f}" if exact >= Decimal("0.01") else f"${exact:,.4f}"
    review = page.get_by_role("row").filter(has_text="code-review").first.inner_text()
    assert "3" in review.split()
    # The page's own JSON, fetched by the signed-in browser, is the exact ledger figure.
    data = page.request.get(f"{console.url}/ui/me", headers={"accept": "application/json"}).json()
    assert data["month_to_date_usd"] == format_usd(total)
    page.close()


def test_trusted_header_sign_in(browser: Any, tmp_path: Path, fake: FakeUpstream) -> None:
    with running_console(tmp_path, fake, ui_auth="header") as console:
        context = browser.new_context(extra_http_headers={"X-Forwarded-Email": "ada@acme.example"})
        page = context.new_page()
        page.goto(f"{console.url}/ui/me")
        assert page.get_by_text("ada@acme.example").first.is_visible()
        assert page.get_by_role("link", name="Team").is_visible()
        context.close()
        anonymous = browser.new_page()
        anonymous.goto(f"{console.url}/ui/me")
        assert "/ui/signin" in anonymous.url and anonymous.get_by_text("sign-in proxy").is_visible()
        anonymous.close()


def test_oidc_sign_in(browser: Any, tmp_path: Path, fake: FakeUpstream) -> None:
    from tests.oidc_env import console_settings, oidc_provider

    users = {"u-vp": {"email": "vp@acme.example", "groups": ["vp-eng"]}}
    with (
        oidc_provider(users) as provider,
        running_console(tmp_path, fake, **console_settings(provider)) as console,
    ):
        page = browser.new_page()
        page.goto(f"{console.url}/ui/org")
        page.get_by_role("link", name="Sign in with your company account").click()
        page.wait_for_url(f"{provider.issuer}/oauth2/authorize*")
        page.get_by_role("button", name="u-vp").click()  # the provider's own sign-in page
        page.wait_for_url(f"{console.url}/ui/org")
        assert page.get_by_role("heading", name="Organisation", exact=False).is_visible()
        assert provider.pkce.checked
        page.close()


def test_exemption_requested_by_a_lead_and_approved(browser: Any, console: Console) -> None:
    store = console.gw.store
    create_budget(store, name="team-platform", scope="team", value="platform", amount_usd="2")
    lead = sign_in(browser, console, "ada@acme.example")
    lead.goto(f"{console.url}/ui/exemptions")
    lead.get_by_label("Extra headroom (USD)").fill("40")
    lead.get_by_label("For how many hours").fill("24")
    lead.get_by_label("Only for use case").fill("autonomous-agent")
    lead.get_by_label("Reason").fill("launch week")
    lead.get_by_role("button", name="Request").click()
    assert lead.get_by_role("status").filter(has_text="requested").is_visible(), lead.content()[-3000:]
    exemption = store.list_exemptions()[0]
    # No approve button for the requester; a forged decision is refused.
    assert lead.get_by_role("button", name="Approve").count() == 0
    lead.goto(f"{console.url}/ui/exemptions/{exemption.id}")
    assert lead.get_by_role("button", name="Approve").count() == 0
    approver = sign_in(browser, console, "vp@acme.example")
    approver.goto(f"{console.url}/ui/exemptions/{exemption.id}")
    approver.get_by_label("Note").fill("go")
    approver.get_by_role("button", name="Approve").click()
    assert approver.get_by_text("vp@acme.example").first.is_visible()
    assert store.list_exemptions()[0].status == "approved"
    console.call("ada@acme.example", "autonomous-agent", "agent-run")
    console.rows()
    lead.goto(f"{console.url}/ui/exemptions/{exemption.id}")
    ran = lead.get_by_role("table").filter(has_text="inside the window")
    assert "agent-run" in ran.inner_text()
    lead.close()
    approver.close()


def test_another_teams_page_is_forbidden(browser: Any, console: Console) -> None:
    payments = next(t for t in console.gw.store.list_teams() if t.name == "payments")
    page = sign_in(browser, console, "ada@acme.example")
    response = page.goto(f"{console.url}/ui/teams/{payments.id}")
    assert response is not None and response.status == 403
    assert page.get_by_role("alert").is_visible()
    ok = page.goto(f"{console.url}/ui/teams/platform")
    assert ok is not None and ok.status == 200
    page.close()


def test_key_created_shown_once_and_works(browser: Any, console: Console) -> None:
    page = sign_in(browser, console, "linus@acme.example")
    page.get_by_label("Name", exact=True).fill("new-laptop")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_role("textbox", name="Key", exact=True).input_value()
    assert secret.startswith("sk-sg-")
    page.reload()  # a reload re-posts nothing: the secret is gone
    page.goto(f"{console.url}/ui/me")
    assert secret not in page.content() and "new-laptop" in page.content()
    sdk = anthropic.Anthropic(base_url=console.url, api_key=secret, max_retries=0)
    reply = sdk.messages.create(
        model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
    )
    sdk.close()
    assert reply.usage.output_tokens > 0
    page.close()
