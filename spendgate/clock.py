"""Timestamps in one format everywhere: ISO-8601 UTC with microseconds and a Z."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now_iso() -> str:
    return iso(datetime.now(UTC))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_epoch(seconds: float) -> str:
    # Same text as iso(), without strftime: three of these per ledger row, on the request path.
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")[:-6] + "Z"
