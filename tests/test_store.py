"""The Store interface, run against every backend (SQLite always; PostgreSQL when configured)."""

from __future__ import annotations

import pytest

from spendgate.admin.service import create_key, spend_report
from spendgate.models import LedgerRow
from spendgate.store import Conflict, NotFound, open_store
from spendgate.store.base import Store


def row(
    request_id: str,
    team_id: str,
    cost_nanos: int,
    started: str = "2026-11-02T10:00:00.000000Z",
    **extra: object,
) -> LedgerRow:
    return LedgerRow(
        request_id=request_id,
        provider="anthropic",
        endpoint="/v1/messages",
        started_at=started,
        ended_at=started,
        status_code=200,
        status="ok",
        use_case=str(extra.pop("use_case", "untagged")),
        team_id=team_id,
        input_tokens=100,
        output_tokens=10,
        cost_nanos=cost_nanos,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def store(database_url: str) -> Store:
    s = open_store(database_url)
    s.migrate()
    return s


def test_migrations_are_named_and_applied_once(database_url: str) -> None:
    s = open_store(database_url)
    first = s.migrate()
    assert first and first[0] == "0001_initial"
    assert s.migrate() == []
    s.close()


def test_principals_lifecycle_and_readable_conflicts(store: Store) -> None:
    store.create_org("acme")
    team = store.create_team("acme", "platform", "CC-1")
    store.create_user("platform", "ada", None)
    with pytest.raises(Conflict, match="a team named 'platform' in org 'acme' already exists"):
        store.create_team("acme", "platform", "CC-2")
    with pytest.raises(NotFound, match="no team named 'nope'"):
        store.create_user("nope", "x", None)
    key, _ = create_key(store, name="k1", team="platform", user="ada", tags={"repo": "api"})
    principals = store.active_principals()
    assert [p.key_id for p in principals.values()] == [key.id]
    assert next(iter(principals.values())).default_tags == {"repo": "api"}
    store.revoke_team(team.id)
    assert store.active_principals() == {}
    assert [k.id for k in store.list_keys()] == [key.id]  # the key itself is not revoked
    assert store.list_teams() == [] and len(store.list_teams(include_revoked=True)) == 1


def test_ledger_insert_is_idempotent_and_sums_exactly(store: Store) -> None:
    store.create_org("o")
    t1 = store.create_team("o", "t1", "CC-1")
    t2 = store.create_team("o", "t2", "CC-2")
    rows = [row("a", t1.id, 1_234_567_891), row("b", t1.id, 1), row("c", t2.id, 5, use_case="batch")]
    assert store.insert_ledger_rows(rows) == 3
    assert store.insert_ledger_rows(rows) == 0  # a journal replay changes nothing
    report = {r["team"]: r for r in spend_report(store, "team", None, None)}
    assert report["t1"]["cost_usd"] == "1.234567892" and report["t1"]["requests"] == 2
    assert report["t2"]["cost_usd"] == "0.000000005"
    by_use_case = {r["use_case"]: r["requests"] for r in spend_report(store, "use_case", None, None)}
    assert by_use_case == {"untagged": 2, "batch": 1}


def test_period_filters_and_latest(store: Store) -> None:
    store.insert_ledger_rows(
        [row(f"r{i}", "team_x", 10, started=f"2026-11-0{i}T00:00:00.000000Z") for i in range(1, 6)]
    )
    assert [r["request_id"] for r in store.ledger_rows(latest=2)] == ["r4", "r5"]
    inside = store.ledger_rows("2026-11-02T00:00:00.000000Z", "2026-11-04T00:00:00.000000Z")
    assert [r["request_id"] for r in inside] == ["r2", "r3"]
