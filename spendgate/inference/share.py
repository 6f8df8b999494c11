"""Declared or inferred: how much of each group's spend had a use case its callers declared, and
how much one Spendgate inferred. Every table of spend by use case shows the split (the CLI's
`spend --by use_case`, the reports, the console), read from the daily rollups' use_case_source key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from spendgate.store.spend import SpendStore

INFERRED = "inferred:"


def source_kind(source: str | None, use_case: str) -> str:
    """declared, inferred or none. A row from before sources were recorded (migration 0017) counts
    as declared unless it is untagged: inference did not exist then."""
    if not source:
        return "none" if use_case == "untagged" else "declared"
    if source.startswith(INFERRED):
        return "inferred"
    return "none" if source == "none" else "declared"


@dataclass(slots=True)
class SourceSplit:
    declared_requests: int = 0
    declared_nanos: int = 0
    inferred_requests: int = 0
    inferred_nanos: int = 0


def split_by_source(
    store: SpendStore,
    column: str,
    since: str | None,
    until: str | None,
    where: Mapping[str, str | None] | None = None,
) -> dict[str | None, SourceSplit]:
    """Per value of the rollup key `column`: its declared and inferred calls and spend (untagged
    calls are neither)."""
    groups = [column] if column == "use_case" else [column, "use_case"]
    rows = store.sum_grouped([*groups, "use_case_source"], ["requests", "cost_nanos"], since, until, where)
    out: dict[str | None, SourceSplit] = {}
    for r in rows:
        kind = source_kind(r["use_case_source"], r["use_case"])
        split = out.setdefault(r[column], SourceSplit())
        if kind == "declared":
            split.declared_requests += int(r["requests"])
            split.declared_nanos += int(r["cost_nanos"])
        elif kind == "inferred":
            split.inferred_requests += int(r["requests"])
            split.inferred_nanos += int(r["cost_nanos"])
    return out
