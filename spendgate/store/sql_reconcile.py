"""Provider-reported usage (imported) and the ledger's spend per day and model, part of the shared
SQL store: what `spendgate reconcile` compares."""

from __future__ import annotations

from collections.abc import Sequence

from spendgate.clock import utc_now_iso
from spendgate.store.finance import MeteredSpend, ProviderUsage
from spendgate.store.sql_rollups import RollupQueries

_VALUE_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "requests",
    "cost_nanos",
    "source",
    "imported_at",
)
_UPSERT = (
    "INSERT INTO provider_usage (day, provider, api_key_id, model, "
    f"{', '.join(_VALUE_COLUMNS)}) VALUES ({', '.join('?' for _ in range(4 + len(_VALUE_COLUMNS)))}) "
    "ON CONFLICT (day, provider, api_key_id, model) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _VALUE_COLUMNS)
)


class ReconcileQueries(RollupQueries):  # reads the rollups through sum_grouped
    def upsert_provider_usage(self, rows: Sequence[ProviderUsage], source: str) -> dict[str, int]:
        """Store provider usage keyed by (day, provider, key id, model): a row already imported is
        replaced, never added to. Counts of new and replaced rows."""
        counts = {"new": 0, "replaced": 0}
        if not rows:
            return counts
        existing: set[tuple[str, str, str, str]] = set()
        for provider in sorted({r.provider for r in rows}):
            days = [r.day for r in rows if r.provider == provider]
            for found in self._query(
                "SELECT day, provider, api_key_id, model FROM provider_usage "
                "WHERE provider = ? AND day >= ? AND day <= ?",
                (provider, min(days), max(days)),
            ):
                existing.add((found["day"], found["provider"], found["api_key_id"], found["model"]))
        now = utc_now_iso()
        for row in rows:
            self._write(
                _UPSERT,
                (
                    *row.key,
                    row.input_tokens,
                    row.output_tokens,
                    row.cache_read_tokens,
                    row.cache_write_tokens,
                    row.requests,
                    row.cost_nanos,
                    source,
                    now,
                ),
            )
            counts["replaced" if row.key in existing else "new"] += 1
        return counts

    def provider_usage_rows(self, since_day: str, until_day: str) -> list[ProviderUsage]:
        """Imported rows with since_day <= day < until_day (YYYY-MM-DD), ordered by their key."""
        rows = self._query(
            "SELECT * FROM provider_usage WHERE day >= ? AND day < ? "
            "ORDER BY day, provider, api_key_id, model",
            (since_day, until_day),
        )
        return [
            ProviderUsage(
                r["day"],
                r["provider"],
                r["api_key_id"],
                r["model"],
                int(r["input_tokens"]),
                int(r["output_tokens"]),
                int(r["cache_read_tokens"]),
                int(r["cache_write_tokens"]),
                None if r["requests"] is None else int(r["requests"]),
                None if r["cost_nanos"] is None else int(r["cost_nanos"]),
            )
            for r in rows
        ]

    def metered_by_day_model(self, since: str, until: str) -> list[MeteredSpend]:
        """Ledger spend of calls started in [since, until) per UTC day, provider and billed model
        (from the daily rollup)."""
        rows = self.sum_grouped(["day", "provider", "billed_model"], ["requests", "cost_nanos"], since, until)
        out = [
            MeteredSpend(r["day"], r["provider"], r["billed_model"] or "", r["requests"], r["cost_nanos"])
            for r in rows
        ]
        return sorted(out, key=lambda r: (r.day, r.provider, r.model))
