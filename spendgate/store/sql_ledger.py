"""The ledger and spend queries, part of the shared SQL store: rows in (with their rollups), rows
and grouped spend out."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import orjson

from spendgate.dimensions import BY_NAME, SAVINGS_BY, SPEND_BY, column_of
from spendgate.models import LEDGER_COLUMNS, TOKEN_COLUMNS, LedgerRow
from spendgate.store.ledger import BOOL_COLUMNS_AT, ledger_values
from spendgate.store.spend import SavingsByGroup, SpendByGroup, UsageBucket
from spendgate.store.sql_rollups import RollupQueries, add_to_rollups, in_range

# Only a repeated request id is ignored (a journal replay); any other violation is an error.
_INSERT_LEDGER = (
    f"INSERT INTO ledger ({', '.join(LEDGER_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in LEDGER_COLUMNS)}) ON CONFLICT (request_id) DO NOTHING"
)
_ID_CHUNK = 512  # request ids per IN (...) lookup, well under SQLite's parameter limit
_REQUEST_ID = LEDGER_COLUMNS.index("request_id")
# SpendByGroup's measures, in its field order
_SPEND_MEASURES = ("requests", *TOKEN_COLUMNS, "cost_nanos", "estimated_requests")
# UsageBucket's measures, in its field order
_BUCKET_MEASURES = (
    "requests",
    "routed_requests",
    "input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "output_tokens",
    "web_search_requests",
    "cost_nanos",
)
_TOTAL_INPUT = "(input_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_read_tokens)"


class LedgerQueries(RollupQueries):  # reads the rollups through sum_grouped
    def insert_ledger_rows(self, rows: Sequence[LedgerRow]) -> int:
        return self.insert_ledger_values([ledger_values(row) for row in rows])

    def insert_ledger_values(self, rows: Sequence[list[Any]]) -> int:
        # Request ids are unique per replica and a journal segment is replayed by one process,
        # so rows not present when the transaction starts are exactly the rows it inserts.
        with self._transaction() as tx:
            present: set[str] = set()
            ids = [values[_REQUEST_ID] for values in rows]
            for start in range(0, len(ids), _ID_CHUNK):
                chunk = ids[start : start + _ID_CHUNK]
                # Padded to a power of two with a repeated id (the same answer): a few statement
                # texts, each parsed once and cached, rather than one per batch size.
                chunk += chunk[-1:] * ((1 << (len(chunk) - 1).bit_length()) - len(chunk))
                found = tx.run(
                    self._sql(
                        f"SELECT request_id FROM ledger WHERE request_id IN ({', '.join('?' for _ in chunk)})"
                    ),
                    chunk,
                )
                present.update(r["request_id"] for r in found)
            new: list[list[Any]] = []
            for values in rows:
                request_id = values[_REQUEST_ID]
                if request_id not in present:
                    present.add(request_id)
                    new.append(values)
            if new:
                tx.run_many(self._sql(_INSERT_LEDGER), new)
                add_to_rollups(tx, self._sql, new)
            return len(new)

    def ledger_rows(
        self, since: str | None = None, until: str | None = None, latest: int | None = None
    ) -> list[dict[str, Any]]:
        where, params = _period(since, until)
        if latest is None:
            rows = self._query(f"SELECT * FROM ledger {where} ORDER BY started_at", params)
        else:
            rows = self._query(
                f"SELECT * FROM (SELECT * FROM ledger {where} ORDER BY started_at DESC LIMIT ?) AS latest "
                "ORDER BY started_at",
                [*params, latest],
            )
        return [_parsed(row) for row in rows]

    def ledger_row(self, request_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM ledger WHERE request_id = ?", [request_id])
        return _parsed(rows[0]) if rows else None

    def iter_ledger_rows(
        self, since: str | None = None, until: str | None = None, batch: int = 2000
    ) -> Generator[dict[str, Any]]:
        where, params = _period(since, until)
        sql = f"SELECT {', '.join(LEDGER_COLUMNS)} FROM ledger {where} ORDER BY started_at, request_id"
        for row in self._iterate(sql, params, batch):
            row["tags"] = orjson.loads(row["tags"])
            for i in BOOL_COLUMNS_AT:  # stored as 0/1
                row[LEDGER_COLUMNS[i]] = bool(row[LEDGER_COLUMNS[i]])
            yield row

    def spend(self, by: str, since: str | None, until: str | None) -> list[SpendByGroup]:
        column = SPEND_BY[by].column
        if by == "session":  # too many values for the rollup: the raw ledger, by its index
            return self._raw_spend(column, since, until)
        rows = self.sum_grouped([column], _SPEND_MEASURES, since, until)
        names = self._names_of(by)
        out = [
            SpendByGroup(r[column], names.get(r[column], r[column]), *(int(r[m]) for m in _SPEND_MEASURES))
            for r in rows
        ]
        return sorted(out, key=lambda r: (-r.cost_nanos, str(r.id)))

    def _raw_spend(self, column: str, since: str | None, until: str | None) -> list[SpendByGroup]:
        where, params = _period(since, until)
        sums = ", ".join(f"SUM({c}) AS {c}" for c in TOKEN_COLUMNS)
        value = f"NULLIF({column}, '')"  # '' and NULL both mean "none": one group, id None
        rows = self._query(
            f"SELECT {value} AS id, COUNT(*) AS requests, {sums}, "
            f"SUM(cost_nanos) AS cost_nanos, SUM(estimated) AS estimated_requests "
            f"FROM ledger {where} GROUP BY {value} ORDER BY cost_nanos DESC",
            params,
        )
        return [SpendByGroup(r["id"], r["id"], *(int(r[m] or 0) for m in _SPEND_MEASURES)) for r in rows]

    def savings(self, by: str, since: str | None, until: str | None) -> list[SavingsByGroup]:
        column = column_of(by, SAVINGS_BY)
        # Routed: a rule picked a model other than the one asked for. A row without a
        # counterfactual (failed, or from before routing) would have cost what it did.
        measures = ["requests", "routed_requests", "cost_nanos", "counterfactual_nanos"]
        rows = self.sum_grouped([column], measures, since, until)
        names = self._names_of(by)
        return [
            SavingsByGroup(r[column], names.get(r[column], r[column]), *(int(r[m]) for m in measures))
            for r in rows
        ]

    def usage_buckets(
        self, by: str, since: str | None, until: str | None, thresholds: Sequence[int] = ()
    ) -> list[UsageBucket]:
        column = column_of(by, SAVINGS_BY)
        names = self._names_of(by)
        if not thresholds:  # one band: the rollups have every sum, by day and pricing tier
            rows = self.sum_grouped([column, "day", "pricing_tier"], _BUCKET_MEASURES, since, until)
            merged: dict[tuple[Any, ...], list[int]] = {}
            for r in rows:
                key = (r[column], r["day"], str(r["pricing_tier"] or "").startswith("batch"), 0)
                sums = merged.setdefault(key, [0] * len(_BUCKET_MEASURES))
                for i, m in enumerate(_BUCKET_MEASURES):
                    sums[i] += int(r[m])
            return [
                UsageBucket(key[0], names.get(key[0], key[0]), key[1], key[2], key[3], *sums)
                for key, sums in merged.items()
            ]
        where, params = _period(since, until)
        band = " + ".join(f"CASE WHEN {_TOTAL_INPUT} > ? THEN 1 ELSE 0 END" for _ in thresholds)
        routed = "CASE WHEN route_rule IS NOT NULL AND upstream_model <> requested_model THEN 1 ELSE 0 END"
        summed = ", ".join(f"SUM({m}) AS {m}" for m in _BUCKET_MEASURES[2:])
        rows = self._query(
            f"SELECT {column} AS id, SUBSTR(started_at, 1, 10) AS day, "
            "CASE WHEN pricing_tier LIKE 'batch%' THEN 1 ELSE 0 END AS batch, "
            f"{band} AS band, COUNT(*) AS requests, SUM({routed}) AS routed_requests, {summed} "
            f"FROM ledger {where} GROUP BY 1, 2, 3, 4",
            [*thresholds, *params],
        )
        return [
            UsageBucket(
                r["id"],
                names.get(r["id"], r["id"]),
                r["day"],
                bool(r["batch"]),
                int(r["band"]),
                *(int(r[m] or 0) for m in _BUCKET_MEASURES),
            )
            for r in rows
        ]

    def _names_of(self, by: str) -> dict[str, str]:
        """Display names of `by`'s ids when it is a named dimension (else none: values are names)."""
        return self.names(by) if by in BY_NAME and BY_NAME[by].names_table is not None else {}


def _parsed(row: Any) -> dict[str, Any]:
    item = dict(row)
    item["tags"] = orjson.loads(item["tags"])
    return item


def _period(since: str | None, until: str | None) -> tuple[str, list[Any]]:
    clauses, params = in_range("started_at", since or None, until or None)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params
