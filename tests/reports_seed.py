"""A small, exact ledger for the report tests: two teams, two months, merged PRs, a budget, routed
calls and an alert. October 2026: platform spends $3,200 for 85 merged PRs ($37.65 a PR), mobile
$1,100 for 20 ($55.00); $4,300 in total."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from spendgate.finance.github import MergedPR
from spendgate.models import LedgerRow
from spendgate.store import Store

USD = 1_000_000_000
NOW = datetime(2026, 11, 1, 7, 0, tzinfo=UTC)  # the morning after the month closes
_ids = itertools.count()


def _row(day: str, team_id: str, usd: int, use_case: str, **extra: object) -> LedgerRow:
    stamp = f"{day}T10:00:00.000000Z"
    values: dict[str, object] = {
        "key_id": f"key-{team_id[-4:]}",
        "user_id": None,
        "upstream_model": "claude-sonnet-4-6",
        "requested_model": "claude-sonnet-4-6",
        "cost_center": None,
    }
    values.update(extra)
    return LedgerRow(
        request_id=f"req-{next(_ids)}",
        provider="anthropic",
        endpoint="/v1/messages",
        started_at=stamp,
        ended_at=stamp,
        status_code=200,
        status="ok",
        use_case=use_case,
        team_id=team_id,
        cost_nanos=usd * USD,
        **values,  # type: ignore[arg-type]
    )


def seed(store: Store, *, routing: bool = True, alert: bool = True) -> dict[str, str]:
    org = store.create_org("acme")
    platform = store.create_team(org.name, "platform", "CC-100")
    mobile = store.create_team(org.name, "mobile", "CC-200")
    ada = store.create_user(platform.name, "ada", "ada@acme.example")
    grace = store.create_user(mobile.name, "grace", "grace@acme.example")
    store.map_github_login("ada-gh", ada.id)
    store.map_github_login("grace-gh", grace.id)
    p = {"user_id": ada.id, "cost_center": "CC-100"}
    m = {"user_id": grace.id, "cost_center": "CC-200", "upstream_model": "gpt-4.1"}
    rows = [_row("2026-09-10", platform.id, 1000, "code-review", **p)]
    rows.append(_row("2026-09-12", mobile.id, 900, "autonomous-agent", **m))
    rows += [_row(f"2026-10-{d:02d}", platform.id, 100, "code-review", **p) for d in range(1, 32)]
    routed = {"route_rule": "cheap-review", "requested_model": "claude-opus-4-1"} if routing else {}
    rows.append(
        _row("2026-10-15", platform.id, 100, "chat", counterfactual_cost_nanos=500 * USD, **routed, **p)
    )
    rows += [_row(f"2026-10-{d:02d}", mobile.id, 50, "autonomous-agent", **m) for d in range(1, 23)]
    store.insert_ledger_rows(rows)

    prs = [MergedPR("acme/api", n, "ada-gh", f"2026-09-{1 + n % 28:02d}T12:00:00Z") for n in range(10)]
    prs += [MergedPR("acme/app", n, "grace-gh", f"2026-09-{1 + n % 28:02d}T12:00:00Z") for n in range(12)]
    prs += [MergedPR("acme/api", 100 + n, "ada-gh", f"2026-10-{1 + n % 31:02d}T12:00:00Z") for n in range(85)]
    prs += [
        MergedPR("acme/app", 100 + n, "grace-gh", f"2026-10-{1 + n % 31:02d}T12:00:00Z") for n in range(20)
    ]
    store.upsert_pull_requests(prs, "test")

    store.create_budget(
        name="platform-monthly", scope_type="team", scope_value=platform.id, amount_nanos=3000 * USD
    )
    if alert:
        store.open_alert(
            alert_key="anomaly:team:platform:2026-10-15",
            kind="anomaly",
            group_by="team",
            group_value="platform",
            day="2026-10-15",
            summary="platform spent $200 today, 2x its 7-day average",
            details={},
            opened_at="2026-10-15T16:00:00.000000Z",
        )
    return {"platform": platform.id, "mobile": mobile.id}
