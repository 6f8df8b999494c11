"""Screenshots of each console page for docs/console.md, from a `spendgate demo` database.

    cd /tmp/demo && spendgate demo --no-wait          # a database with traffic, roles, an exemption
    SPENDGATE_DATABASE_URL=sqlite:////tmp/demo/spendgate.db spendgate serve --port 18790 &
    SPENDGATE_DATABASE_URL=sqlite:////tmp/demo/spendgate.db python docs/console/screenshots.py http://127.0.0.1:18790 --history

Signs in through one-time links (minted here, in the same database) with Playwright and Debian's
Chromium, and writes docs/console/*.png.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from spendgate.audit import Actor
from spendgate.config import Settings
from spendgate.console.links import mint
from spendgate.models import LedgerRow
from spendgate.store import open_store

OUT = Path(__file__).parent
PAGES = [  # (file, who, path)
    ("signin.png", None, "/ui/signin"),
    ("me.png", "linus@demo-corp.example", "/ui/me"),
    ("team.png", "ada@demo-corp.example", "/ui/teams/platform"),
    ("exemptions.png", "ken@demo-corp.example", "/ui/exemptions"),
    ("org.png", "grace@demo-corp.example", "/ui/org"),
    ("rollout.png", "barbara@demo-corp.example", "/ui/rollout"),
    ("audit.png", "barbara@demo-corp.example", "/ui/audit"),
    ("forbidden.png", "ada@demo-corp.example", "/ui/teams/payments"),
]


def add_history(store: Any, days: int = 70) -> None:
    """Synthetic past calls for the demo's keys (the demo itself only has today's), so trends and the
    rollout page have something to show. Clearly not real traffic: request ids start with 'hist-'."""
    rng = random.Random(7)
    keys = store.list_keys()
    centers = {t.id: t.cost_center for t in store.list_teams()}
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rows = []
    for key in keys:
        scale = rng.uniform(0.5, 3.0)
        for day in range(1, days + 1):
            if day > 40 and key.team_id == keys[-1].team_id:
                continue  # one team started recently: still observing
            started = (now - timedelta(days=day, hours=rng.randrange(8))).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            use_case = rng.choice(["code-review", "autocomplete", "autonomous-agent", "test-generation"])
            rows.append(
                LedgerRow(
                    request_id=f"hist-{key.id}-{day}", provider="anthropic", endpoint="/v1/messages",
                    started_at=started, ended_at=started, status_code=200, status="ok", use_case=use_case,
                    org_id=key.org_id, team_id=key.team_id, user_id=key.user_id, key_id=key.id,
                    cost_center=centers.get(key.team_id),
                    upstream_model="claude-sonnet-4-6", requested_model="claude-sonnet-4-6",
                    session_id=f"session-{day}", cost_nanos=int(scale * rng.uniform(2, 9) * 1e9),
                )
            )
    store.insert_ledger_rows(rows)


def main(url: str) -> None:
    store = open_store(Settings().database_url)
    if "--history" in sys.argv:
        add_history(store)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for name, who, path in PAGES:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            if who:
                link, _, _ = mint(store, Actor("docs screenshots", "cli"), who, url, datetime.now(UTC))
                page.goto(link)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(f"{url}/ui/me")
            page.goto(f"{url}{path}")
            page.screenshot(path=str(OUT / name), full_page=True)
            page.close()
        browser.close()
    store.close()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(args[0] if args else "http://127.0.0.1:18790")
