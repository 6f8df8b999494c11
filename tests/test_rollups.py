"""Daily rollups: always equal to the raw ledger they summarise, on SQLite and PostgreSQL.

Every report reads `sum_grouped` (rollup for whole days, raw ledger for partial days), so the
reference here is a plain Python sum over the rows that were inserted.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from yoyo import get_backend, read_migrations

from spendgate.cli import build_app
from spendgate.models import LedgerRow
from spendgate.store import open_store
from spendgate.store.base import Store
from spendgate.store.migrate import migrations_dir
from spendgate.store.sql_rollups import day_split, month_split

DAYS = ["2026-10-30", "2026-10-31", "2026-11-01", "2026-11-02", "2026-11-03"]


def _random_rows(rng: random.Random, count: int, start: int = 0) -> list[LedgerRow]:
    rows = []
    for n in range(start, start + count):
        requested = rng.choice(["claude-opus-4-5", "claude-sonnet-4-6", None])
        routed = rng.random() < 0.3
        upstream = "claude-haiku-4-5" if routed else requested
        tags: dict[str, str] = {}
        if rng.random() < 0.4:
            tags["repo"] = rng.choice(["acme/api", "acme/web"])
        if rng.random() < 0.3:
            tags["pr"] = str(rng.randrange(1, 4))
        if rng.random() < 0.2:
            tags["branch"] = rng.choice(["feat-a", "fix-b"])
        if rng.random() < 0.2:
            tags["ticket"] = "T-1"
        cost = rng.randrange(0, 10**7)
        moment = f"{rng.choice(DAYS)}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00.{n % 1000000:06d}Z"
        rows.append(
            LedgerRow(
                request_id=f"req_{n}",
                provider=rng.choice(["anthropic", "openai"]),
                endpoint="/v1/messages",
                started_at=moment,
                ended_at=moment,
                status_code=200,
                status="ok",
                org_id=rng.choice(["org_a", None]),
                team_id=rng.choice(["team_a", "team_b", None]),
                user_id=rng.choice(["user_1", "user_2", None]),
                key_id=rng.choice(["key_1", "key_2", "key_3"]),
                cost_center=rng.choice(["CC-1", "CC-2", None]),
                use_case=rng.choice(["code-review", "autocomplete", "untagged"]),
                tags=tags,
                session_id=rng.choice(["s1", "s2", None]),
                requested_model=requested,
                upstream_model=upstream,
                response_model=rng.choice([None, f"{upstream}-20251001"]) if upstream else None,
                route_rule=rng.choice(["inline-to-fast", None]) if routed else None,
                counterfactual_cost_nanos=cost * 3 if routed and rng.random() < 0.8 else None,
                input_tokens=rng.randrange(0, 5000),
                cache_write_5m_tokens=rng.choice([0, rng.randrange(3000)]),
                cache_write_1h_tokens=rng.choice([0, rng.randrange(3000)]),
                cache_read_tokens=rng.choice([0, rng.randrange(9000)]),
                output_tokens=rng.randrange(0, 2000),
                reasoning_tokens=rng.choice([0, rng.randrange(500)]),
                web_search_requests=rng.choice([0, 0, 1]),
                cost_nanos=cost,
                estimated=rng.random() < 0.1,
                pricing_tier=rng.choice(["standard", "long_context", "batch"]),
                price_ref=rng.choice(["genai-prices 1", None]),
            )
        )
    return rows


def _reference(
    rows: Iterable[LedgerRow], column: str, since: str | None, until: str | None
) -> dict[Any, list[int]]:
    """requests, cost, counterfactual, routed, output tokens per value of a ledger column."""
    sums: dict[Any, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for r in rows:
        if (since and r.started_at < since) or (until and r.started_at >= until):
            continue
        value = r.started_at[:10] if column == "day" else getattr(r, column)
        total = sums[value]
        total[0] += 1
        total[1] += r.cost_nanos
        total[2] += r.cost_nanos if r.counterfactual_cost_nanos is None else r.counterfactual_cost_nanos
        routed = r.route_rule is not None and r.upstream_model is not None and r.requested_model is not None
        total[3] += int(routed and r.upstream_model != r.requested_model)
        total[4] += r.output_tokens
    return dict(sums)


def _grouped(store: Store, column: str, since: str | None, until: str | None) -> dict[Any, list[int]]:
    measures = ["requests", "cost_nanos", "counterfactual_nanos", "routed_requests", "output_tokens"]
    return {r[column]: [r[m] for m in measures] for r in store.sum_grouped([column], measures, since, until)}


PERIODS = [
    (None, None),
    ("2026-11-01T00:00:00.000000Z", "2026-12-01T00:00:00.000000Z"),  # whole days only
    ("2026-10-30T13:30:00.000000Z", "2026-11-02T08:15:00.000000Z"),  # partial days at both edges
    ("2026-10-31T05:00:00.000000Z", "2026-10-31T18:00:00.000000Z"),  # inside one day
    ("2026-11-02T00:00:00.000000Z", None),
    (None, "2026-10-31T12:00:00.000000Z"),
]


@pytest.fixture
def store(database_url: str) -> Any:
    store = open_store(database_url)
    store.migrate()
    yield store
    store.close()


def test_rollups_equal_the_ledger_for_any_period(store: Store) -> None:
    rng = random.Random(7)
    rows = _random_rows(rng, 600)
    assert store.insert_ledger_rows(rows[:250]) == 250
    # a replayed batch (journal recovery) with new rows and repeats inside it adds each row once
    assert store.insert_ledger_rows(rows[200:] + rows[300:310]) == 350
    assert store.insert_ledger_rows(rows[:50]) == 0
    for since, until in PERIODS:
        for column in ("team_id", "use_case", "upstream_model", "cost_center", "key_id", "day", "route_rule"):
            assert _grouped(store, column, since, until) == _reference(rows, column, since, until), (
                column,
                since,
                until,
            )


def test_reports_read_the_rollups_and_agree_with_the_ledger(store: Store) -> None:
    rows = _random_rows(random.Random(11), 400)
    store.insert_ledger_rows(rows)
    since, until = "2026-10-30T13:30:00.000000Z", "2026-11-03T00:00:00.000000Z"
    inside = [r for r in rows if since <= r.started_at < until]
    spend = {r.id: r for r in store.spend("team", since, until)}
    for team, (requests, cost, _, _, output) in _reference(rows, "team_id", since, until).items():
        assert (spend[team].requests, spend[team].cost_nanos, spend[team].output_tokens) == (
            requests,
            cost,
            output,
        )
    # sessions are not in the rollup: read from the ledger, same answer
    sessions = {r.id: r.cost_nanos for r in store.spend("session", since, until)}
    assert sessions == {k: v[1] for k, v in _reference(rows, "session_id", since, until).items()}
    savings = {r.id: r for r in store.savings("model", since, until)}
    for model, (requests, cost, counterfactual, routed, _) in _reference(
        rows, "requested_model", since, until
    ).items():
        assert (savings[model].requests, savings[model].cost_nanos) == (requests, cost)
        assert (savings[model].counterfactual_nanos, savings[model].routed_requests) == (
            counterfactual,
            routed,
        )
    daily = {(r.value, r.day): r.cost_nanos for r in store.spend_daily("use_case", since, until)}
    expected_daily: dict[tuple[str, str], int] = defaultdict(int)
    for r in inside:
        expected_daily[(r.use_case, r.started_at[:10])] += r.cost_nanos
    assert daily == expected_daily
    charge = store.chargeback_rows(since, until)
    assert sum(r["cost_nanos"] for r in charge) == sum(r.cost_nanos for r in inside)
    assert sum(r["requests"] for r in charge) == len(inside)
    assert sum(r["cache_read_tokens"] for r in charge) == sum(r.cache_read_tokens for r in inside)
    metered = store.metered_by_day_model(since, until)
    expected_metered: dict[tuple[str, str, str], int] = defaultdict(int)
    for r in inside:
        model = r.response_model or r.upstream_model or r.requested_model or ""
        expected_metered[(r.started_at[:10], r.provider, model)] += r.cost_nanos
    assert {(m.day, m.provider, m.model): m.cost_nanos for m in metered} == expected_metered
    totals = store.spend_totals("team", since, until, where=("use_case", "code-review"))
    expected_totals: dict[str | None, int] = defaultdict(int)
    for r in inside:
        if r.use_case == "code-review":
            expected_totals[r.team_id] += r.cost_nanos
    assert totals == expected_totals


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2026-10-31T06:00:00.000000Z", "2026-11-03T00:00:00.000000Z"),  # inside months: the ledger
        ("2026-10-01T00:00:00.000000Z", "2026-12-01T00:00:00.000000Z"),  # whole months: the rollup
        ("2026-10-15T00:00:00.000000Z", "2026-12-01T00:00:00.000000Z"),  # both
    ],
)
def test_work_rollup_keeps_repo_pr_and_branch_together(store: Store, since: str, until: str) -> None:
    rows = _random_rows(random.Random(5), 300)
    store.insert_ledger_rows(rows)
    got: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    for line in store.tagged_spend(["pr", "branch"], since, until):
        key = (line.month, line.team_id, tuple(sorted(line.tags.items())))
        got[key][0] += line.requests
        got[key][1] += line.cost_nanos
    expected: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if since <= r.started_at < until and ("pr" in r.tags or "branch" in r.tags):
            kept = tuple(sorted((k, v) for k, v in r.tags.items() if k in ("repo", "pr", "branch")))
            key = (r.started_at[:7], r.team_id, kept)
            expected[key][0] += 1
            expected[key][1] += r.cost_nanos
    assert got == expected
    assert sum(v[0] for v in got.values()) > 20
    # by repository alone: summed per repository, whatever the PR or branch
    repos: dict[tuple[Any, ...], int] = defaultdict(int)
    for line in store.tagged_spend(["repo"], since, until):
        assert set(line.tags) == {"repo"}
        repos[(line.month, line.team_id, line.tags["repo"])] += line.cost_nanos
    expected_repos: dict[tuple[Any, ...], int] = defaultdict(int)
    for r in rows:
        if since <= r.started_at < until and "repo" in r.tags:
            expected_repos[(r.started_at[:7], r.team_id, r.tags["repo"])] += r.cost_nanos
    assert repos == expected_repos
    with pytest.raises(ValueError, match="ticket"):
        store.tagged_spend(["ticket"], since, until)


def test_rebuild_rollups_repairs_drift(store: Store, database_url: str) -> None:
    rows = _random_rows(random.Random(3), 200)
    store.insert_ledger_rows(rows)
    before = _grouped(store, "team_id", None, None)
    work_before = store.tagged_spend(["repo"], "2026-01-01T00:00:00.000000Z", "2027-01-01T00:00:00.000000Z")
    # someone edits the ledger by hand: the rollup no longer agrees until it is rebuilt
    store._write("UPDATE ledger SET cost_nanos = cost_nanos + 1")  # type: ignore[attr-defined]
    assert _grouped(store, "team_id", None, None) == before
    counts = store.rebuild_rollups()
    after = _grouped(store, "team_id", None, None)
    assert {k: v[1] for k, v in after.items()} == {k: v[1] + v[0] for k, v in before.items()}
    assert counts["tagged_calls"] == sum(1 for r in rows if {"repo", "pr", "branch"} & set(r.tags))
    work_after = store.tagged_spend(["repo"], "2026-01-01T00:00:00.000000Z", "2027-01-01T00:00:00.000000Z")
    assert sum(w.cost_nanos for w in work_after) == sum(w.cost_nanos + w.requests for w in work_before)


def test_rebuild_rollups_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("SPENDGATE_DATABASE_URL", url)
    store = open_store(url)
    store.migrate()
    store.insert_ledger_rows(_random_rows(random.Random(1), 50))
    store.close()
    result = CliRunner().invoke(build_app(), ["ledger", "rebuild-rollups"])
    assert result.exit_code == 0, result.output
    assert "rebuilt ledger_daily" in result.stdout


def test_migration_backfills_an_existing_ledger(tmp_path: Path) -> None:
    """A ledger written before the rollups existed gets them when it is migrated."""
    path = tmp_path / "old.db"
    backend = get_backend(f"sqlite:///{path}")
    migrations = read_migrations(migrations_dir())
    older = [m for m in migrations if m.id < "0007_rollups"]
    backend.apply_migrations(backend.to_apply(migrations.__class__(older)))
    backend.connection.close()
    rows = _random_rows(random.Random(9), 120)
    import sqlite3

    from spendgate.models import LEDGER_COLUMNS
    from spendgate.store.sql_ledger import ledger_values

    conn = sqlite3.connect(path)
    # the columns the ledger had then (later migrations add more)
    had = {r[1] for r in conn.execute("PRAGMA table_info(ledger)")}
    at = [i for i, c in enumerate(LEDGER_COLUMNS) if c in had]
    columns, marks = ", ".join(LEDGER_COLUMNS[i] for i in at), ", ".join("?" for _ in at)
    conn.executemany(
        f"INSERT INTO ledger ({columns}) VALUES ({marks})",
        [[values[i] for i in at] for values in map(ledger_values, rows)],
    )
    conn.commit()
    conn.close()
    store = open_store(f"sqlite:///{path}")
    assert "0007_rollups" in store.migrate()
    for column in ("team_id", "day", "route_rule"):
        assert _grouped(store, column, None, None) == _reference(rows, column, None, None)
    assert sum(
        w.requests
        for w in store.tagged_spend(
            ["repo", "pr", "branch"], "2026-01-01T00:00:00.000000Z", "2027-01-01T00:00:00.000000Z"
        )
    ) == sum(1 for r in rows if {"repo", "pr", "branch"} & set(r.tags))
    store.close()


def test_day_split() -> None:
    assert day_split("2026-11-01T00:00:00.000000Z", "2026-11-03T00:00:00.000000Z") == (
        [],
        ("2026-11-01", "2026-11-03"),
    )
    assert day_split("2026-11-01T10:00:00.000000Z", "2026-11-03T05:00:00.000000Z") == (
        [
            ("2026-11-01T10:00:00.000000Z", "2026-11-02T00:00:00.000000Z"),
            ("2026-11-03T00:00:00.000000Z", "2026-11-03T05:00:00.000000Z"),
        ],
        ("2026-11-02", "2026-11-03"),
    )
    assert day_split("2026-11-01T10:00:00.000000Z", "2026-11-01T12:00:00.000000Z") == (
        [("2026-11-01T10:00:00.000000Z", "2026-11-01T12:00:00.000000Z")],
        None,
    )
    assert day_split(None, None) == ([], (None, None))


def test_month_split() -> None:
    assert month_split("2026-09-01T00:00:00.000000Z", "2026-12-01T00:00:00.000000Z") == (
        [],
        ("2026-09", "2026-12"),
    )
    assert month_split("2026-09-15T00:00:00.000000Z", "2027-01-03T00:00:00.000000Z") == (
        [
            ("2026-09-15T00:00:00.000000Z", "2026-10-01T00:00:00.000000Z"),
            ("2027-01-01T00:00:00.000000Z", "2027-01-03T00:00:00.000000Z"),
        ],
        ("2026-10", "2027-01"),
    )
    assert month_split("2026-12-15T00:00:00.000000Z", "2026-12-20T00:00:00.000000Z")[1] is None


def test_every_batch_size_lands_each_row_once(store: Store) -> None:
    """SQLite writes a batch as statements of a few sizes (50, then powers of two) and pads the
    duplicate check: every batch size from 1 to 63 lands every row once, in the ledger and the rollups."""
    rows = _random_rows(random.Random(13), sum(range(1, 64)))
    start = 0
    for size in range(1, 64):
        assert store.insert_ledger_rows(rows[start : start + size]) == size
        start += size
    assert store.insert_ledger_rows(rows[100:171]) == 0  # a replay: the padded check finds all 71
    assert store.insert_ledger_rows(rows[1990:] + rows[:3]) == 0
    for column in ("team_id", "day"):
        assert _grouped(store, column, None, None) == _reference(rows, column, None, None)
