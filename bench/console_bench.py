"""How long each web console page takes on the server over the 10M-row benchmark ledger.

    python bench/console_bench.py                    # fills a fresh 10M-row SQLite ledger first (~3 min)
    python bench/report_bench.py --backends sqlite --keep  # or reuse a kept one:
    python bench/console_bench.py --database-url sqlite:////tmp/spendgate-report-bench-…/ledger.db

The ledger is `bench/report_bench.py`'s synthetic organisation (40 teams, 400 users, 800 keys, 92
days ending 2026-11-28, team budgets, merged PRs). The console is built by the real app factory
(migrations included) and each page is requested in-process through Starlette's test client, signed
in as a lead (who is also the requester of a pending exemption), an approver and an admin: HTML and
JSON, `--repeat` times; the figure is the median, the slowest in brackets. In-process means no
network: the time is the server's (session lookup, role checks, queries, rendering).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from starlette.testclient import TestClient

from spendgate import roles
from spendgate.admin.budget_service import request_exemption
from spendgate.app import create_app
from spendgate.audit import Actor
from spendgate.config import Settings
from spendgate.console.links import mint

sys.path.insert(0, str(Path(__file__).parent))
import report_bench  # (bench/ is not a package)

SETUP = Actor("console bench", "cli")


def signed_in(app: object, store: object, email: str) -> TestClient:
    client = TestClient(app, base_url="http://127.0.0.1:8787")  # type: ignore[arg-type]
    url, _, _ = mint(store, SETUP, email, "http://127.0.0.1:8787", datetime.now(UTC))  # type: ignore[arg-type]
    r = client.post("/ui/signin/link", data={"token": url.split("token=", 1)[1]}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="an existing benchmark database (report_bench.py --keep)")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=92)
    parser.add_argument("--teams", type=int, default=40)
    parser.add_argument("--users-per-team", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    url = args.database_url
    if url is None:
        folder = Path(tempfile.mkdtemp(prefix="spendgate-console-bench-"))
        url = f"sqlite:///{folder / 'ledger.db'}"
        print(f"filling {url} with {args.rows:,} rows over {args.days} days", file=sys.stderr)
        report_bench.fill(url, args)
    app = create_app(Settings(database_url=url, master_key="bench", anthropic_base_url="http://127.0.0.1:9"))
    store = app.state.gateway.store
    # report_bench's users have no email: links and the console name them by user name instead.
    users = store.list_users()
    lead, approver, admin = users[0], users[1], users[2]
    team = next(t for t in store.list_teams() if t.id == lead.team_id)
    roles.grant(store, SETUP, lead.id, "lead", team.id)
    roles.grant(store, SETUP, approver.id, "approver")
    roles.grant(store, SETUP, admin.id, "admin")
    budget = next(b for b in store.list_budgets() if b.scope_type == "team" and b.scope_value == team.id)
    exemption = request_exemption(
        store, budget=budget.id, amount_usd="100", hours=48, reason="bench", requested_by=lead.name
    )
    clients = {
        "lead": signed_in(app, store, lead.name),
        "approver": signed_in(app, store, approver.name),
        "admin": signed_in(app, store, admin.name),
    }
    pages = [
        ("lead", "/ui/me"),
        ("lead", f"/ui/teams/{team.id}"),
        ("approver", "/ui/org"),
        ("approver", "/ui/exemptions"),
        ("approver", f"/ui/exemptions/{exemption.id}"),
        ("admin", "/ui/audit"),
        ("admin", "/ui/rollout"),
    ]
    print(
        f"\nconsole pages over {url.split('://')[0]} ({args.rows:,}-row benchmark ledger), "
        f"server time in-process, median of {args.repeat} (slowest):"
    )
    print("| page | as | HTML | JSON |")
    print("|---|---|---:|---:|")
    for who, path in pages:
        client = clients[who]
        cells = []
        for accept in ("text/html", "application/json"):
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                r = client.get(path, headers={"accept": accept})
                times.append(time.perf_counter() - started)
                assert r.status_code == 200, (path, r.status_code, r.text[:300])
            cells.append(f"{statistics.median(times) * 1000:.0f} ms ({max(times) * 1000:.0f})")
        shown = path.replace(team.id, "{team}").replace(exemption.id, "{id}")
        print(f"| `{shown}` | {who} | {cells[0]} | {cells[1]} |")
    store.close()


if __name__ == "__main__":
    main()
