"""How fast finance and governance reports answer over a large ledger, on SQLite and PostgreSQL.

    python bench/report_bench.py                              # 10M rows, SQLite then PostgreSQL
    python bench/report_bench.py --rows 1000000 --backends sqlite
    python bench/report_bench.py --postgres-url postgresql://postgres@127.0.0.1:5432/postgres

Builds a synthetic organisation (1 org, 40 teams in 8 cost centers, 400 users, 800 keys: a laptop
key and a CI key each, with their own use cases and habitual models; routing to Haiku for
autocomplete; repo/PR/branch tags on part of the calls; 1,200 merged PRs; a monthly budget per
team), writes `--rows` ledger rows spread over `--days` days into a fresh database, builds the
daily rollups, then runs each report command in-process through the real CLI (typer's runner,
output discarded) `--repeat` times and prints the median and slowest time of each.

Loading: the generator inserts raw rows with the ledger's secondary indexes dropped and recreates
them afterwards (the usual bulk-load order), then calls `Store.rebuild_rollups()`: the same
summing the migration does for an existing ledger. It also times the ledger writer's own path
(`insert_ledger_rows`, which updates the rollups in the same transaction) on extra rows.

Everything is local: a temporary SQLite file, and a database `spendgate_bench_<pid>` created on
the PostgreSQL server and dropped at the end (`--keep` keeps both).
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from spendgate.cli import build_app
from spendgate.finance.github import MergedPR
from spendgate.models import LEDGER_COLUMNS, LedgerRow
from spendgate.store import open_store
from spendgate.store.base import Store

# model -> (provider, nanos per token: input, output, cache read, cache write 5m)
MODELS: dict[str, tuple[str, int, int, int, int]] = {
    "claude-opus-4-5": ("anthropic", 5000, 25000, 500, 6250),
    "claude-sonnet-4-6": ("anthropic", 3000, 15000, 300, 3750),
    "claude-haiku-4-5": ("anthropic", 1000, 5000, 100, 1250),
    "gpt-4.1": ("openai", 2000, 8000, 500, 0),
    "gpt-4.1-mini": ("openai", 400, 1600, 100, 0),
}
DEV_USE_CASES = [
    ("coding", "claude-sonnet-4-6"),
    ("autocomplete", "claude-sonnet-4-6"),
    ("architecture", "claude-opus-4-5"),
]
CI_USE_CASES = [
    ("code-review", "claude-sonnet-4-6"),
    ("test-generation", "gpt-4.1"),
    ("batch", "gpt-4.1-mini"),
]
LEDGER_INDEXES = (
    "ledger_started_at",
    "ledger_team_started",
    "ledger_session",
    "ledger_use_case_started",
    "ledger_key_started",
)


@dataclass(frozen=True)
class Key:
    key_id: str
    team_id: str
    user_id: str
    cost_center: str
    team_no: int
    ci: bool


def build_org(store: Store, teams: int, users_per_team: int) -> tuple[list[Key], list[tuple[str, str]]]:
    org = store.create_org("acme")
    keys: list[Key] = []
    logins: list[tuple[str, str]] = []
    for t in range(teams):
        team = store.create_team(org.id, f"team-{t:02d}", f"CC-{t % 8}")
        for u in range(users_per_team):
            user = store.create_user(team.id, f"user-{t:02d}-{u}", None)
            logins.append((f"gh-{t:02d}-{u}", user.id))
            for ci in (False, True):
                key = store.create_key(
                    key_hash=secrets.token_hex(32),
                    key_prefix=f"sg-{secrets.token_hex(3)}",
                    name=f"{user.name}-{'ci' if ci else 'laptop'}",
                    team=team.id,
                    user=user.id,
                    default_use_case=None,
                    default_tags={},
                    expires_at=None,
                )
                keys.append(Key(key.id, team.id, user.id, team.cost_center, t, ci))
        store.create_budget(
            name=f"team-{t:02d}-monthly", scope_type="team", scope_value=team.id, amount_nanos=40_000 * 10**9
        )
    return keys, logins


def generate(
    rows: int, days: int, end: datetime, keys: list[Key], seed: int, chunk: int
) -> Iterator[list[tuple[Any, ...]]]:
    """Ledger rows in LEDGER_COLUMNS order, oldest first, `chunk` at a time; same seed, same rows."""
    rng = random.Random(seed)
    rand, randrange = rng.random, rng.randrange
    start = end - timedelta(days=days)
    span_us = days * 86_400_000_000
    index = {name: i for i, name in enumerate(LEDGER_COLUMNS)}
    defaults = [getattr(LedgerRow("", "", "", "", "", 0, "", ""), c) for c in LEDGER_COLUMNS]
    defaults[index["tags"]] = "{}"
    defaults = [int(v) if isinstance(v, bool) else v for v in defaults]
    day_names = [(start + timedelta(days=d)).date().isoformat() for d in range(days + 1)]
    base = start.replace(hour=0, minute=0, second=0, microsecond=0)
    offset_us = int((start - base).total_seconds() * 1_000_000)
    batch: list[tuple[Any, ...]] = []
    for n in range(rows):
        key = keys[randrange(len(keys))]
        use_case, habit = (CI_USE_CASES if key.ci else DEV_USE_CASES)[randrange(3)]
        requested, upstream, rule = habit, habit, None
        if use_case in ("autocomplete", "batch") and habit.startswith("claude"):
            upstream, rule = "claude-haiku-4-5", "inline-and-batch-to-fast"
        provider, p_in, p_out, p_read, p_write = MODELS[upstream]
        inp, out = randrange(200, 6000), randrange(20, 2500)
        read = randrange(0, 40_000) if rand() < 0.6 else 0
        write = randrange(0, 4000) if provider == "anthropic" and rand() < 0.2 else 0
        cost = inp * p_in + out * p_out + read * p_read + write * p_write
        counterfactual = None
        if rule is not None:
            _, q_in, q_out, q_read, q_write = MODELS[requested]
            counterfactual = inp * q_in + out * q_out + read * q_read + write * q_write
        at_us = offset_us + n * span_us // rows + randrange(1000)
        day, rest = divmod(at_us, 86_400_000_000)
        seconds, micros = divmod(rest, 1_000_000)
        hours, seconds = divmod(seconds, 3600)
        minutes, seconds = divmod(seconds, 60)
        started = f"{day_names[day]}T{hours:02d}:{minutes:02d}:{seconds:02d}.{micros:06d}Z"
        tags = "{}"
        if key.ci and rand() < 0.5:
            tags = f'{{"repo": "acme/svc-{key.team_no}", "pr": "{randrange(1, 40) + 40 * key.team_no}"}}'
        elif not key.ci and rand() < 0.1:
            tags = f'{{"branch": "feat-{randrange(500)}"}}'
        row = list(defaults)
        row[index["request_id"]] = f"req_{seed}_{n}"
        row[index["provider"]] = provider
        row[index["endpoint"]] = "/v1/messages" if provider == "anthropic" else "/v1/chat/completions"
        row[index["started_at"]] = started
        row[index["ended_at"]] = started
        row[index["status_code"]] = 200
        row[index["status"]] = "ok"
        row[index["use_case"]] = use_case
        row[index["org_id"]] = None
        row[index["team_id"]] = key.team_id
        row[index["user_id"]] = key.user_id
        row[index["key_id"]] = key.key_id
        row[index["cost_center"]] = key.cost_center
        row[index["tags"]] = tags
        row[index["session_id"]] = f"sess-{key.key_id[-6:]}-{day}"
        row[index["requested_model"]] = requested
        row[index["upstream_model"]] = upstream
        row[index["input_tokens"]] = inp
        row[index["output_tokens"]] = out
        row[index["cache_read_tokens"]] = read
        row[index["cache_write_5m_tokens"]] = write
        row[index["cost_nanos"]] = cost
        row[index["pricing_tier"]] = "standard"
        row[index["route_rule"]] = rule
        row[index["counterfactual_cost_nanos"]] = counterfactual
        batch.append(tuple(row))
        if len(batch) >= chunk:
            yield batch
            batch = []
    if batch:
        yield batch


def bulk_load(
    store: Store, url: str, chunks: Iterator[list[tuple[Any, ...]]], org_id: str, total: int
) -> None:
    org_at = LEDGER_COLUMNS.index("org_id")
    columns = ", ".join(LEDGER_COLUMNS)
    done = 0
    if url.startswith("sqlite"):
        conn = store._conn  # type: ignore[attr-defined]
        ddl = {
            r["name"]: r["sql"]
            for r in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
        }
        for name in LEDGER_INDEXES:
            conn.execute(f"DROP INDEX {name}")
        sql = f"INSERT INTO ledger ({columns}) VALUES ({', '.join('?' for _ in LEDGER_COLUMNS)})"
        for chunk in chunks:
            conn.execute("BEGIN")
            conn.executemany(sql, [(*r[:org_at], org_id, *r[org_at + 1 :]) for r in chunk])
            conn.execute("COMMIT")
            done += len(chunk)
            progress(done, total)
        for name in LEDGER_INDEXES:
            conn.execute(ddl[name])
    else:
        conn = store._ensure()  # type: ignore[attr-defined]
        ddl = {
            r["indexname"]: r["indexdef"]
            for r in conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ledger'")
        }
        for name in LEDGER_INDEXES:
            conn.execute(f"DROP INDEX {name}")
        with conn.cursor() as cur, cur.copy(f"COPY ledger ({columns}) FROM STDIN") as copy:
            for chunk in chunks:
                for r in chunk:
                    copy.write_row((*r[:org_at], org_id, *r[org_at + 1 :]))
                done += len(chunk)
                progress(done, total)
        for name in LEDGER_INDEXES:
            conn.execute(ddl[name])
        conn.execute("ANALYZE")
    print(file=sys.stderr)


def progress(done: int, total: int) -> None:
    print(f"\r  loaded {done:,} / {total:,} rows", end="", file=sys.stderr, flush=True)


def add_prs(store: Store, logins: list[tuple[str, str]], end: datetime, months: int) -> None:
    for login, user in logins:
        store.map_github_login(login, user)
    rng = random.Random(1)
    prs = []
    for n in range(1200):
        login, _ = logins[rng.randrange(len(logins))]
        team_no = int(login.split("-")[1])
        merged = end - timedelta(days=rng.randrange(months * 30), minutes=rng.randrange(1440))
        prs.append(
            MergedPR(
                repo=f"acme/svc-{team_no}",
                number=1 + n % 40 + 40 * team_no if n < 1000 else 10_000 + n,
                author=login,
                merged_at=merged.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                head_ref=f"feat-{n}",
            )
        )
    store.upsert_pull_requests(prs, "bench")


def time_command(runner: CliRunner, args: list[str], repeat: int) -> tuple[float, float, int]:
    app = build_app()
    times = []
    size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        result = runner.invoke(app, args)
        times.append(time.perf_counter() - started)
        if result.exit_code != 0:
            raise SystemExit(f"spendgate {' '.join(args)} failed: {result.output[-2000:]}")
        size = len(result.stdout)
    return statistics.median(times), max(times), size


def writer_path(store: Store, keys: list[Key], end: datetime, rows: int) -> tuple[float, float]:
    """µs per row: insert_ledger_rows (with rollups) in batches of 500, and the bare INSERT."""
    fields = list(LEDGER_COLUMNS)
    made = [
        LedgerRow(**dict(zip(fields, r, strict=True)) | {"tags": {}, "estimated": False, "streamed": False})
        for chunk in generate(rows, 1, end, keys, seed=99, chunk=rows)
        for r in chunk
    ]
    started = time.perf_counter()
    for i in range(0, len(made), 500):
        store.insert_ledger_rows(made[i : i + 500])
    with_rollups = (time.perf_counter() - started) / len(made) * 1e6
    bare = [r.__class__(**(r.as_dict() | {"request_id": r.request_id + "b"})) for r in made]
    from spendgate.store.sql_ledger import _INSERT_LEDGER, ledger_values

    started = time.perf_counter()
    for i in range(0, len(bare), 500):
        with store._transaction() as tx:  # type: ignore[attr-defined]
            values = [ledger_values(r) for r in bare[i : i + 500]]
            tx.run_many(store._sql(_INSERT_LEDGER), values)  # type: ignore[attr-defined]
    without = (time.perf_counter() - started) / len(bare) * 1e6
    return with_rollups, without


def run_backend(name: str, url: str, args: argparse.Namespace) -> list[tuple[str, float, float, int]]:
    print(f"\n== {name}: {args.rows:,} ledger rows over {args.days} days", file=sys.stderr)
    fill(url, args)
    return time_reports(url, args)


def fill(url: str, args: argparse.Namespace) -> None:
    end = datetime(2026, 11, 28, tzinfo=UTC)
    store = open_store(url)
    store.migrate()
    keys, logins = build_org(store, args.teams, args.users_per_team)
    org_id = store.list_orgs()[0].id
    started = time.perf_counter()
    bulk_load(store, url, generate(args.rows, args.days, end, keys, seed=7, chunk=100_000), org_id, args.rows)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    counts = store.rebuild_rollups()
    rollup_s = time.perf_counter() - started
    add_prs(store, logins, end, 6)
    with_rollups, without = writer_path(store, keys, end, 20_000)
    store.close()
    print(
        f"  load {load_s:.0f} s; rollups built in {rollup_s:.1f} s "
        f"({counts['daily_rows']:,} daily rollup rows, {counts['tagged_calls']:,} tagged calls); "
        f"ledger writer {with_rollups:.1f} us/row with rollups vs {without:.1f} us/row without",
        file=sys.stderr,
    )


def time_reports(url: str, args: argparse.Namespace) -> list[tuple[str, float, float, int]]:
    os.environ["SPENDGATE_DATABASE_URL"] = url
    runner = CliRunner()
    month, since, until = "2026-10", "2026-10-01", "2026-11-01"
    commands = [
        ["spend", "--by", "team", "--since", since, "--until", until, "--format", "json"],
        ["spend", "--by", "user", "--since", since, "--until", until, "--format", "json"],
        ["spend", "--by", "key", "--since", since, "--until", until, "--format", "json"],
        ["spend", "--by", "use_case", "--since", since, "--until", until, "--format", "json"],
        ["spend", "--by", "model", "--since", since, "--until", until, "--format", "json"],
        [
            "spend",
            "--by",
            "cost_center",
            "--since",
            "2026-10-15T09:30:00Z",
            "--until",
            "2026-11-20T17:45:00Z",
            "--format",
            "json",
        ],
        ["savings", "--by", "rule", "--since", since, "--until", until, "--format", "json"],
        ["savings", "--by", "team", "--since", since, "--until", until, "--format", "json"],
        ["chargeback", "--month", month, "--format", "json"],
        ["chargeback", "--month", month, "--format", "focus-csv"],
        [
            "forecast",
            "--by",
            "team",
            "--month",
            "2026-11",
            "--now",
            "2026-11-20T15:00:00Z",
            "--format",
            "json",
        ],
        [
            "forecast",
            "--by",
            "cost_center",
            "--month",
            "2026-11",
            "--now",
            "2026-11-20T15:00:00Z",
            "--format",
            "json",
        ],
        ["report", "cost-per-pr", "--months", "6", "--month", "2026-11", "--format", "json"],
        ["report", "cost-per-pr", "--months", "6", "--month", "2026-11", "--by", "repo", "--format", "json"],
        ["report", "cost-per-pr", "--months", "6", "--month", "2026-11", "--per-pr", "--format", "json"],
        ["reconcile", "--since", since, "--until", until, "--format", "json"],
    ]
    commands += [list(extra.split()) for extra in args.extra]
    results = []
    for command in commands:
        median, slowest, size = time_command(runner, command, args.repeat)
        label = " ".join(command)
        results.append((label, median, slowest, size))
        print(f"  {median * 1000:8.0f} ms  (max {slowest * 1000:6.0f})  {label}", file=sys.stderr)
    for label, work in report_work(url).items():
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            work()
            times.append(time.perf_counter() - started)
        results.append((label, statistics.median(times), max(times), 0))
        print(
            f"  {statistics.median(times) * 1000:8.0f} ms  (max {max(times) * 1000:6.0f})  {label}",
            file=sys.stderr,
        )
    return results


def report_work(url: str) -> dict[str, Any]:
    """The two audience reports: gathering their figures (the part that reads the database) and
    producing the files (figures, charts, HTML and PDF), separately."""
    from spendgate.reports import data
    from spendgate.reports.produce import produce

    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    start, end = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)

    def with_store(fn: Any) -> Any:
        def run() -> None:
            store = open_store(url)
            try:
                fn(store)
            finally:
                store.close()

        return run

    return {
        "report finance --month 2026-10: figures only": with_store(
            lambda s: data.finance_report(s, "2026-10", now)
        ),
        "report governance --month 2026-10: figures only": with_store(
            lambda s: data.governance_report(s, start, end, "October 2026", now)
        ),
        "report finance --month 2026-10 --format html": with_store(
            lambda s: produce(s, "finance", month="2026-10", now=now, formats=("html",))
        ),
        "report finance --month 2026-10 --format pdf": with_store(
            lambda s: produce(s, "finance", month="2026-10", now=now, formats=("pdf",))
        ),
        "report finance --month 2026-10 --format both": with_store(
            lambda s: produce(s, "finance", month="2026-10", now=now)
        ),
        "report governance --month 2026-10 --format html": with_store(
            lambda s: produce(s, "governance", month="2026-10", now=now, formats=("html",))
        ),
        "report governance --month 2026-10 --format pdf": with_store(
            lambda s: produce(s, "governance", month="2026-10", now=now, formats=("pdf",))
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=92)
    parser.add_argument("--teams", type=int, default=40)
    parser.add_argument("--users-per-team", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "SPENDGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the databases (their location is printed)")
    parser.add_argument(
        "--database-url",
        action="append",
        default=[],
        help="time the reports on this existing database (one filled by --keep); repeatable",
    )
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        help="another report command to time, e.g. 'report finance --month 2026-10 --output /tmp/r'",
    )
    args = parser.parse_args()
    table: dict[str, list[tuple[str, float, float, int]]] = {}
    folder = Path(tempfile.mkdtemp(prefix="spendgate-report-bench-"))
    for url in args.database_url:
        table[url.split("://")[0]] = time_reports(url, args)
    for backend in [] if args.database_url else args.backends.split(","):
        if backend == "sqlite":
            url = f"sqlite:///{folder / 'ledger.db'}"
            table[backend] = run_backend(backend, url, args)
        elif backend == "postgres":
            import psycopg

            name = f"spendgate_bench_{os.getpid()}"
            with psycopg.connect(args.postgres_url, autocommit=True) as admin:
                admin.execute(f"CREATE DATABASE {name}")
            base, _, _ = args.postgres_url.rpartition("/")
            try:
                table[backend] = run_backend(backend, f"{base}/{name}", args)
            finally:
                if not args.keep:
                    with psycopg.connect(args.postgres_url, autocommit=True) as admin:
                        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        else:
            raise SystemExit(f"unknown backend {backend!r}")
    print(
        f"\nreport times over {args.rows:,} ledger rows, median of {args.repeat} (slowest), in-process CLI:"
    )
    names = list(table)
    print("| report | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for i, (label, _, _, _) in enumerate(next(iter(table.values()))):
        cells = [f"{table[n][i][1] * 1000:.0f} ms ({table[n][i][2] * 1000:.0f})" for n in names]
        print(f"| `{label}` | " + " | ".join(cells) + " |")
    if args.keep:
        print(f"kept: {folder}", file=sys.stderr)
    else:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
