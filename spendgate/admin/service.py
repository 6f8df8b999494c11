"""Admin operations used by both the CLI and the HTTP admin API (one implementation)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from spendgate.dimensions import SPEND_BY, column_of
from spendgate.inference.share import SourceSplit, split_by_source
from spendgate.models import TOKEN_COLUMNS, ApiKey
from spendgate.pricing import format_usd
from spendgate.store.ledger import LedgerStore
from spendgate.store.principals import NameStore, PrincipalStore
from spendgate.store.spend import SpendStore


class LedgerNames(LedgerStore, NameStore, Protocol):
    """Ledger rows with their teams' names."""


def create_key(
    store: PrincipalStore,
    *,
    name: str,
    team: str,
    user: str | None = None,
    use_case: str | None = None,
    tags: dict[str, str] | None = None,
    expires_at: str | None = None,
) -> tuple[ApiKey, str]:
    """Mint a virtual key; the secret is returned here once and never stored."""
    from spendgate.auth import generate_key  # here: reports and the CLI need no request path

    secret, key_hash, prefix = generate_key()
    key = store.create_key(
        key_hash=key_hash,
        key_prefix=prefix,
        name=name,
        team=team,
        user=user,
        default_use_case=use_case,
        default_tags=tags or {},
        expires_at=normalize_time(expires_at) if expires_at else None,
    )
    return key, secret


def key_view(key: ApiKey) -> dict[str, Any]:
    """A key as shown to people: never its hash."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.key_prefix,
        "org_id": key.org_id,
        "team_id": key.team_id,
        "user_id": key.user_id,
        "default_use_case": key.default_use_case,
        "default_tags": key.default_tags,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
    }


def spend_report(store: SpendStore, by: str, since: str | None, until: str | None) -> list[dict[str, Any]]:
    """Spend grouped by one dimension; `cost_usd` is an exact decimal string."""
    column_of(by, SPEND_BY)  # a clear error for an unknown group
    period = (normalize_time(since) if since else None, normalize_time(until) if until else None)
    rows = store.spend(by, *period)
    split = split_by_source(store, "use_case", *period) if by == "use_case" else None
    out = []
    for row in rows:
        item: dict[str, Any] = {
            by: row.name if row.name is not None else ("untagged" if by == "use_case" else None),
            "id": row.id,
            "requests": row.requests,
        }
        for field in TOKEN_COLUMNS:
            item[field] = getattr(row, field)
        item["estimated_requests"] = row.estimated_requests
        item["cost_usd"] = format_usd(row.cost_nanos)
        if split is not None:  # by use case: how much of it was declared, how much inferred
            share = split.get(row.id) or SourceSplit()
            item["declared_usd"] = format_usd(share.declared_nanos)
            item["inferred_usd"] = format_usd(share.inferred_nanos)
            item["inferred_requests"] = share.inferred_requests
        out.append(item)
    return out


def ledger_tail(
    store: LedgerNames, limit: int = 20, since: str | None = None, until: str | None = None
) -> list[dict[str, Any]]:
    """The latest `limit` ledger rows, oldest first, each with its team's name and exact `cost_usd`."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    rows = store.ledger_rows(maybe_time(since), maybe_time(until), latest=limit)
    teams = store.names("team")
    out = []
    for row in rows:
        item = dict(row)
        item["team"] = teams.get(item["team_id"], item["team_id"])
        item["estimated"] = bool(item["estimated"])
        item["streamed"] = bool(item["streamed"])
        item["cost_usd"] = format_usd(int(item["cost_nanos"] or 0))
        out.append(item)
    return out


def normalize_time(text: str) -> str:
    """A date (2026-11-01) or datetime, as the ledger's ISO-8601 UTC form."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO date or datetime: {text!r} (e.g. 2026-11-01)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def maybe_time(text: str | None) -> str | None:
    return normalize_time(text) if text else None
