"""What a console page handler is given and gives back.

A handler is a plain blocking function `(Ctx) -> Page | Response`, run in a worker thread (the store
is blocking). It gathers JSON-ready data once; the same data is rendered as HTML or returned as JSON
(`Accept: application/json`), so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from spendgate.audit import Actor
from spendgate.config import Settings
from spendgate.gateway import Gateway
from spendgate.models import User
from spendgate.roles import Roles
from spendgate.store.base import Store
from spendgate.store.people import UiSession


class Forbidden(Exception):
    """The signed-in person may not see or do this (403)."""


@dataclass(frozen=True, slots=True)
class Viewer:
    user: User
    roles: Roles
    session: UiSession
    led: tuple[tuple[str, str], ...] = ()  # (team id, team name) of the teams this person leads

    @property
    def role_names(self) -> list[str]:
        """For people: 'finance', 'lead of platform'."""
        named = dict(self.led)
        return sorted(self.roles.roles - {"lead"}) + [
            f"lead of {named.get(t, t)}" for t in sorted(self.roles.lead_of)
        ]

    @property
    def email(self) -> str:
        return self.user.email or self.user.name

    @property
    def actor(self) -> Actor:
        return Actor(self.email, "console")


@dataclass(frozen=True, slots=True)
class Page:
    template: str
    data: dict[str, Any]  # JSON-ready: money as exact decimal strings
    title: str
    status: int = 200
    # HTML-only extras (a key's secret shown once is also in `data`, for API callers)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ctx:
    gw: Gateway
    settings: Settings
    request: Request
    viewer: Viewer
    form: Mapping[str, str]
    now: datetime

    @property
    def store(self) -> Store:
        return self.gw.store

    def require(self, allowed: bool, what: str) -> None:
        if not allowed:
            raise Forbidden(f"{self.viewer.email} may not {what}")


Handler = Callable[[Ctx], Page | Response]
