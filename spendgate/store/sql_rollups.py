"""Daily rollups, part of the shared SQL store: kept in step with the ledger, read by reports.

`ledger_daily` sums the ledger per UTC day and every attribution column a report groups by;
`ledger_work_monthly` sums calls tagged `repo`, `pr` or `branch` per UTC month (cost per PR is
monthly, and PRs and branches are many: a daily grain would be ~30 times larger). The ledger
writer inserts rows and adds them to both rollups in one transaction, counting only rows that
were new (a journal replay adds nothing twice), and upserts in key order so replicas sharing
PostgreSQL take row locks in the same order.

Reports ask for sums over a period with `sum_grouped`. Whole UTC days inside the period come from
the rollup; the partial days at either edge (say, "month to date, now") come from the raw ledger
through its `started_at` index, so any period is answered exactly and at most two days are scanned.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from spendgate.dimensions import DIMENSIONS, PER_USER_COLUMNS, ROLLUP_KEYS, TEAM_ROLLUP_KEYS
from spendgate.models import LEDGER_COLUMNS, TOKEN_COLUMNS
from spendgate.store.sql_mixin import QueryMixin, Tx

# measure -> the raw-ledger expression it sums
MEASURES: dict[str, str] = {
    "requests": "1",
    "estimated_requests": "estimated",
    "routed_requests": (
        "CASE WHEN route_rule IS NOT NULL AND upstream_model <> requested_model THEN 1 ELSE 0 END"
    ),
    "input_tokens": "input_tokens",
    "cache_write_5m_tokens": "cache_write_5m_tokens",
    "cache_write_1h_tokens": "cache_write_1h_tokens",
    "cache_read_tokens": "cache_read_tokens",
    "output_tokens": "output_tokens",
    "reasoning_tokens": "reasoning_tokens",
    "web_search_requests": "web_search_requests",
    "cost_nanos": "cost_nanos",
    "counterfactual_nanos": "COALESCE(counterfactual_cost_nanos, cost_nanos)",
}
# rollup key column -> the raw-ledger expression it holds ('' for none)
_RAW_KEYS: dict[str, str] = {
    **{d.column: d.raw for d in DIMENSIONS if d.rollup},
    "day": "SUBSTR(started_at, 1, 10)",
}
# `ledger_daily_team` is `ledger_daily` without the user and key: ~20x fewer rows, and what every
# query that does not group or filter by user or key reads.
_TEAM_AT = [ROLLUP_KEYS.index(k) + 1 for k in TEAM_ROLLUP_KEYS]  # positions in a daily delta (day first)
WORK_TAGS = ("repo", "pr", "branch")

_DAILY_UPSERT = (
    f"INSERT INTO ledger_daily (day, {', '.join(ROLLUP_KEYS)}, {', '.join(MEASURES)}) "
    f"VALUES ({', '.join('?' for _ in range(1 + len(ROLLUP_KEYS) + len(MEASURES)))}) "
    f"ON CONFLICT (day, {', '.join(ROLLUP_KEYS)}) DO UPDATE SET "
    + ", ".join(f"{m} = ledger_daily.{m} + excluded.{m}" for m in MEASURES)
)
_TEAM_UPSERT = (
    f"INSERT INTO ledger_daily_team (day, {', '.join(TEAM_ROLLUP_KEYS)}, {', '.join(MEASURES)}) "
    f"VALUES ({', '.join('?' for _ in range(1 + len(TEAM_ROLLUP_KEYS) + len(MEASURES)))}) "
    f"ON CONFLICT (day, {', '.join(TEAM_ROLLUP_KEYS)}) DO UPDATE SET "
    + ", ".join(f"{m} = ledger_daily_team.{m} + excluded.{m}" for m in MEASURES)
)
_TEAM_FROM_DAILY = (
    f"INSERT INTO ledger_daily_team (day, {', '.join(TEAM_ROLLUP_KEYS)}, {', '.join(MEASURES)}) "
    f"SELECT day, {', '.join(TEAM_ROLLUP_KEYS)}, {', '.join(f'SUM({m})' for m in MEASURES)} "
    "FROM ledger_daily "
    f"GROUP BY day, {', '.join(TEAM_ROLLUP_KEYS)}"
)
_WORK_UPSERT = (
    "INSERT INTO ledger_work_monthly (month, team_id, repo, pr, branch, requests, cost_nanos) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (month, team_id, repo, pr, branch) DO UPDATE SET "
    "requests = ledger_work_monthly.requests + excluded.requests, "
    "cost_nanos = ledger_work_monthly.cost_nanos + excluded.cost_nanos"
)


# The rollup keys as a ledger row holds them, read in C: every key column but `billed_model`, which
# is derived from the three model columns (so `response_model` is read too). `routed` is a function
# of these columns as well, so both are worked out once per distinct key, not once per row.
_ROW_KEY_COLUMNS = (*(c for c in ROLLUP_KEYS if c != "billed_model"), "response_model")
_ROW_KEY = operator.itemgetter(*(LEDGER_COLUMNS.index(c) for c in _ROW_KEY_COLUMNS))
_AT = {column: i for i, column in enumerate(_ROW_KEY_COLUMNS)}
_BILLED_FROM = (_AT["response_model"], _AT["upstream_model"], _AT["requested_model"])
# The measures summed as the row holds them, in MEASURES order from `estimated_requests` on,
# less `routed_requests` (per key) and with `counterfactual_nanos` last as its raw column.
_MEASURE_COLUMNS = (
    "estimated", *TOKEN_COLUMNS, "web_search_requests", "cost_nanos", "counterfactual_cost_nanos"
)
_ROW_MEASURES = operator.itemgetter(*(LEDGER_COLUMNS.index(c) for c in _MEASURE_COLUMNS))
# Where the work rollup's inputs sit in a row's insert parameters
_STARTED, _TEAM, _TAGS, _COST = map(LEDGER_COLUMNS.index, ("started_at", "team_id", "tags", "cost_nanos"))


def daily_deltas(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Rows as insert parameters (`ledger_values`) -> `ledger_daily` upsert parameters, one per
    key, in key order.

    The Python twin of the SQL `rebuild_rollups` sums with (MEASURES, dimensions.py): rows are
    grouped by their raw key columns, then each group is summed column by column in C. This runs
    in the writer thread while it holds the GIL, once per row, so per-row Python is kept to a
    grouping lookup."""
    groups: dict[tuple[str, tuple[Any, ...]], list[tuple[Any, ...]]] = {}
    for r in rows:
        key = (r[_STARTED][:10], _ROW_KEY(r))
        members = groups.get(key)
        if members is None:
            groups[key] = [_ROW_MEASURES(r)]
        else:
            members.append(_ROW_MEASURES(r))
    deltas = []
    for (day, raw), members in groups.items():
        columns = list(zip(*members, strict=True))
        costs, counterfactuals = columns[-2], columns[-1]
        requests = len(members)
        deltas.append(
            (
                day,
                *_rollup_key(raw),
                requests,
                sum(columns[0]),  # estimated: booleans
                requests if _routed(raw) else 0,
                *map(sum, columns[1:-1]),  # tokens, web searches, cost
                sum(k if c is None else c for c, k in zip(counterfactuals, costs, strict=True)),
            )
        )
    return sorted(deltas)  # each key once, so this is key order


def _rollup_key(raw: tuple[Any, ...]) -> list[str]:
    """A row's raw key columns -> the rollup key in ROLLUP_KEYS order ('' stands for None)."""
    billed = next((raw[i] for i in _BILLED_FROM if raw[i]), None)
    values = {**dict(zip(_ROW_KEY_COLUMNS, raw, strict=True)), "billed_model": billed}
    return [values[c] or "" for c in ROLLUP_KEYS]


def _routed(raw: tuple[Any, ...]) -> bool:
    """A rule picked a model other than the one asked for (the `routed_requests` measure)."""
    rule, upstream, requested = (raw[_AT[c]] for c in ("route_rule", "upstream_model", "requested_model"))
    return rule is not None and upstream is not None and requested is not None and upstream != requested


def _accumulate(sums: dict[tuple[Any, ...], list[int]], key: tuple[Any, ...], values: Sequence[int]) -> None:
    total = sums.get(key)
    if total is None:
        sums[key] = list(values)
    else:
        for i, v in enumerate(values):
            total[i] += v


def work_deltas(items: Sequence[tuple[str, str | None, dict[str, Any], int]]) -> list[tuple[Any, ...]]:
    """(started_at, team_id, tags, cost_nanos) -> `ledger_work_monthly` upsert parameters."""
    sums: dict[tuple[str, ...], list[int]] = {}
    for started_at, team_id, tags, cost in items:
        if not any(t in tags for t in WORK_TAGS):
            continue
        key = (started_at[:7], team_id or "", *(str(tags.get(t, "")) for t in WORK_TAGS))
        total = sums.setdefault(key, [0, 0])
        total[0] += 1
        total[1] += cost
    return [(*key, *sums[key]) for key in sorted(sums)]


def team_deltas(daily: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """`ledger_daily` deltas -> `ledger_daily_team` deltas (user and key summed away), in key order."""
    measures = len(MEASURES)
    sums: dict[tuple[Any, ...], list[int]] = {}
    for delta in daily:
        _accumulate(sums, (delta[0], *(delta[i] for i in _TEAM_AT)), delta[-measures:])
    return [(*key, *sums[key]) for key in sorted(sums)]


def add_to_rollups(tx: Tx, sql: Any, rows: Sequence[Sequence[Any]]) -> None:
    """Add newly inserted ledger rows (their insert parameters) to the rollups, inside the
    caller's transaction. Each delta's key is unique within its statement, as a multi-row upsert
    requires."""
    daily = daily_deltas(rows)
    if daily:
        tx.run_many(sql(_DAILY_UPSERT), daily)
        tx.run_many(sql(_TEAM_UPSERT), team_deltas(daily))
    tagged = [r for r in rows if r[_TAGS] != "{}"]  # tags as JSON text: "{}" has none
    work = work_deltas([(r[_STARTED], r[_TEAM], orjson.loads(r[_TAGS]), r[_COST]) for r in tagged])
    if work:
        tx.run_many(sql(_WORK_UPSERT), work)


def day_split(
    since: str | None, until: str | None
) -> tuple[list[tuple[str | None, str | None]], tuple[str | None, str | None] | None]:
    """Split [since, until) into raw-ledger edges and a range of whole UTC days [first, end).

    Returns (edges: [(since, until)] periods to read raw, days: (first_day, end_day) or None);
    None bounds are open."""
    return _split(since, until, _day_start)


def month_split(
    since: str | None, until: str | None
) -> tuple[list[tuple[str | None, str | None]], tuple[str | None, str | None] | None]:
    """`day_split` for whole UTC months ('2026-11')."""
    return _split(since, until, _month_start)


def _split(
    since: str | None, until: str | None, start_of: Any
) -> tuple[list[tuple[str | None, str | None]], tuple[str | None, str | None] | None]:
    first = end = None
    if since:
        unit, begins = start_of(_parse(since), 0)
        first = unit if begins == _parse(since) else start_of(_parse(since), 1)[0]
    if until:
        end = start_of(_parse(until), 0)[0]
    if first is not None and end is not None and first >= end:
        return [(since, until)], None  # no whole unit inside
    edges: list[tuple[str | None, str | None]] = []
    if since and first is not None and _label_start(first) != since:
        edges.append((since, _label_start(first)))
    if until and end is not None and _label_start(end) != until:
        edges.append((_label_start(end), until))
    return edges, (first, end)


def _parse(moment: str) -> datetime:
    parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _day_start(moment: datetime, later: int) -> tuple[str, datetime]:
    """The UTC day of `moment` (`later` days on) and when it begins."""
    day = moment.date() + timedelta(days=later)
    return day.isoformat(), datetime(day.year, day.month, day.day, tzinfo=UTC)


def _month_start(moment: datetime, later: int) -> tuple[str, datetime]:
    year, month = divmod(moment.year * 12 + moment.month - 1 + later, 12)
    return f"{year:04d}-{month + 1:02d}", datetime(year, month + 1, 1, tzinfo=UTC)


def _label_start(label: str) -> str:
    """'2026-11-28' or '2026-11' -> the ISO moment it begins, in the ledger's format."""
    return f"{label}-01T00:00:00.000000Z" if len(label) == 7 else f"{label}T00:00:00.000000Z"


class RollupQueries(QueryMixin):
    def sum_grouped(
        self,
        groups: Sequence[str],
        measures: Sequence[str],
        since: str | None,
        until: str | None,
        where: Mapping[str, str | None] | None = None,
    ) -> list[dict[str, Any]]:
        """Sums of `measures` per distinct value of `groups` (rollup key columns, or `day`) over
        calls started in [since, until), optionally filtered on key columns. Group values are None
        where the ledger has none."""
        for name in (*groups, *(where or {})):
            if name not in _RAW_KEYS:
                raise ValueError(f"cannot group by {name!r}")
        for m in measures:
            if m not in MEASURES:
                raise ValueError(f"no measure {m!r}")
        edges, days = day_split(since, until)
        totals: dict[tuple[Any, ...], list[int]] = {}
        parts: list[list[dict[str, Any]]] = []
        for edge_since, edge_until in edges:
            parts.append(self._raw_sums(groups, measures, edge_since, edge_until, where))
        if days is not None:
            parts.append(self._rollup_sums(groups, measures, days[0], days[1], where))
        for part in parts:
            for row in part:
                key = tuple(row[g] for g in groups)
                total = totals.setdefault(key, [0] * len(measures))
                for i, m in enumerate(measures):
                    total[i] += int(row[m] or 0)
        return [
            {
                **{g: (v if v != "" else None) for g, v in zip(groups, key, strict=True)},
                **dict(zip(measures, total, strict=True)),
            }
            for key, total in totals.items()
        ]

    def _rollup_sums(
        self,
        groups: Sequence[str],
        measures: Sequence[str],
        first_day: str | None,
        end_day: str | None,
        where: Mapping[str, str | None] | None,
    ) -> list[dict[str, Any]]:
        clauses, params = _filters(where, {g: g for g in _RAW_KEYS})
        _in_range(clauses, params, "day", first_day, end_day)
        select = [*groups, *(f"SUM({m}) AS {m}" for m in measures)]
        fine = any(c in PER_USER_COLUMNS for c in (*groups, *(where or {})))
        return self._query(
            f"SELECT {', '.join(select)} FROM {'ledger_daily' if fine else 'ledger_daily_team'}"
            + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
            + (f" GROUP BY {', '.join(groups)}" if groups else ""),
            params,
        )

    def _raw_sums(
        self,
        groups: Sequence[str],
        measures: Sequence[str],
        since: str | None,
        until: str | None,
        where: Mapping[str, str | None] | None,
    ) -> list[dict[str, Any]]:
        clauses, params = _filters(where, _RAW_KEYS)
        _in_range(clauses, params, "started_at", since, until)
        exprs = [_RAW_KEYS[g] for g in groups]
        select = [*(f"{e} AS {g}" for e, g in zip(exprs, groups, strict=True))]
        select += [f"SUM({MEASURES[m]}) AS {m}" for m in measures]
        return self._query(
            f"SELECT {', '.join(select)} FROM ledger"
            + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
            + (f" GROUP BY {', '.join(exprs)}" if groups else ""),
            params,
        )

    # --- work items (repo / pr / branch tags) ---
    def work_spend(self, since: str, until: str, keep: Sequence[str] = WORK_TAGS) -> list[dict[str, Any]]:
        """Spend of calls tagged repo/pr/branch per UTC month, team and the values of the `keep`
        tags (calls carrying none of them are left out): rows of month, team_id, tags (the kept
        tags the calls carried), requests, cost_nanos, in no particular order. Whole months come
        from the monthly work rollup, partial months from the ledger."""
        at = [WORK_TAGS.index(t) for t in keep]
        edges, months = month_split(since, until)
        totals: dict[tuple[str, ...], list[int]] = {}
        for edge_since, edge_until in edges:
            for month, team, *values, requests, cost in work_deltas(
                _work_items(self._tagged_rows(edge_since, edge_until))
            ):
                kept = tuple(values[i] for i in at)
                if any(kept):
                    _add(totals, (month, team, *kept), requests, cost)
        if months is not None:
            clauses, params = in_range("month", *months)
            clauses.append("(" + " OR ".join(f"{t} <> ''" for t in keep) + ")")
            columns = ", ".join(["month", "team_id", *keep])
            rows = self._query(
                f"SELECT {columns}, SUM(requests) AS requests, SUM(cost_nanos) AS cost_nanos "
                f"FROM ledger_work_monthly WHERE {' AND '.join(clauses)} GROUP BY {columns}",
                params,
            )
            if not totals:  # no partial months: the grouped rows are the answer (the usual case)
                return [
                    _work_row(
                        r["month"], r["team_id"], [r[t] for t in keep], keep, r["requests"], r["cost_nanos"]
                    )
                    for r in rows
                ]
            for r in rows:
                _add(
                    totals, (r["month"], r["team_id"], *(r[t] for t in keep)), r["requests"], r["cost_nanos"]
                )
        return [
            _work_row(month, team, values, keep, requests, cost)
            for (month, team, *values), (requests, cost) in totals.items()
        ]

    def _tagged_rows(self, since: str | None, until: str | None) -> list[dict[str, Any]]:
        clause, params = _tagged_clause()
        clauses = [clause]
        _in_range(clauses, params, "started_at", since, until)
        return self._query(
            f"SELECT started_at, team_id, tags, cost_nanos FROM ledger WHERE {' AND '.join(clauses)}",
            params,
        )

    # --- maintenance ---
    def rebuild_rollups(self, on_progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
        """Recompute both rollups from the ledger, in one transaction: after the migration that
        adds them, or for an operator who suspects drift. Returns the counts it summed.

        The daily rollup is summed a UTC month of the ledger at a time (by its `started_at`
        index), so `on_progress(done, total)` can say how far it is: one step a month, then the
        team rollup, then the tagged calls."""
        columns = ["day", *ROLLUP_KEYS]
        select = ", ".join([*(_RAW_KEYS[c] for c in columns), *(f"SUM({e})" for e in MEASURES.values())])
        group = ", ".join(_RAW_KEYS[c] for c in columns)
        insert = f"INSERT INTO ledger_daily (day, {', '.join(ROLLUP_KEYS)}, {', '.join(MEASURES)}) "
        report = on_progress or (lambda done, total: None)
        with self._transaction() as tx:
            span = tx.run(self._sql("SELECT MIN(started_at) AS first, MAX(started_at) AS last FROM ledger"))[
                0
            ]
            chunks = _month_chunks(span["first"], span["last"])
            total = len(chunks) + 2
            report(0, total)
            tx.run(self._sql("DELETE FROM ledger_daily"))
            for done, (first, end) in enumerate(chunks, 1):
                where, params = in_range("started_at", first, end)
                clause = f"WHERE {' AND '.join(where)} " if where else ""
                tx.run(self._sql(f"{insert}SELECT {select} FROM ledger {clause}GROUP BY {group}"), params)
                report(done, total)
            daily = tx.run(self._sql("SELECT COUNT(*) AS n FROM ledger_daily"))[0]["n"]
            tx.run(self._sql("DELETE FROM ledger_daily_team"))
            tx.run(self._sql(_TEAM_FROM_DAILY))
            report(total - 1, total)
            tagged = self._rebuild_work(tx)
            report(total, total)
        return {"daily_rows": int(daily), "tagged_calls": tagged}

    def rebuild_work_rollup(self) -> int:
        """Recompute only `ledger_work_monthly` (the migration sums the daily rollups in SQL, but
        this one needs the JSON tags parsed); returns the number of tagged calls."""
        with self._transaction() as tx:
            return self._rebuild_work(tx)

    def _rebuild_work(self, tx: Tx) -> int:
        tx.run(self._sql("DELETE FROM ledger_work_monthly"))
        clause, params = _tagged_clause()
        tagged = tx.run(
            self._sql(f"SELECT started_at, team_id, tags, cost_nanos FROM ledger WHERE {clause}"), params
        )
        deltas = work_deltas(_work_items(tagged))
        if deltas:
            tx.run_many(self._sql(_WORK_UPSERT), deltas)
        return sum(d[5] for d in deltas)


def _month_chunks(first: str | None, last: str | None) -> list[tuple[str | None, str | None]]:
    """[first, end) bounds on `started_at` that cut the ledger at UTC month starts; the first and
    last chunks are open, so together they hold every row once, whatever its timestamp."""
    if first is None or last is None:
        return []
    cuts: list[str] = []
    year, month = int(first[:4]), int(first[5:7])
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        cut = f"{year:04d}-{month:02d}-01T00:00:00.000000Z"
        if cut > last:
            break
        cuts.append(cut)
    bounds: list[str | None] = [None, *cuts, None]
    return list(itertools.pairwise(bounds))


def _work_items(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str | None, dict[str, Any], int]]:
    """Ledger rows (started_at, team_id, tags as JSON text, cost_nanos) -> `work_deltas` input."""
    return [(r["started_at"], r["team_id"], orjson.loads(r["tags"]), int(r["cost_nanos"])) for r in rows]


def _tagged_clause() -> tuple[str, list[Any]]:
    return "(" + " OR ".join("tags LIKE ?" for _ in WORK_TAGS) + ")", [f'%"{t}":%' for t in WORK_TAGS]


def in_range(column: str, first: str | None, end: str | None) -> tuple[list[str], list[Any]]:
    """SQL conditions (and their parameters) for first <= column < end; a None bound is open."""
    clauses: list[str] = []
    params: list[Any] = []
    _in_range(clauses, params, column, first, end)
    return clauses, params


def _in_range(clauses: list[str], params: list[Any], column: str, first: str | None, end: str | None) -> None:
    if first is not None:
        clauses.append(f"{column} >= ?")
        params.append(first)
    if end is not None:
        clauses.append(f"{column} < ?")
        params.append(end)


def _filters(where: Mapping[str, str | None] | None, exprs: dict[str, str]) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (where or {}).items():
        clauses.append(f"{exprs[column]} = ?")
        params.append("" if value is None else value)
    return clauses, params


def _work_row(
    month: str, team: str, values: Sequence[str], keep: Sequence[str], requests: Any, cost: Any
) -> dict[str, Any]:
    return {
        "month": month,
        "team_id": team or None,
        "tags": {t: v for t, v in zip(keep, values, strict=True) if v},
        "requests": int(requests),
        "cost_nanos": int(cost),
    }


def _add(totals: dict[tuple[str, ...], list[int]], key: tuple[str, ...], requests: Any, cost: Any) -> None:
    total = totals.setdefault(key, [0, 0])
    total[0] += int(requests or 0)
    total[1] += int(cost or 0)
