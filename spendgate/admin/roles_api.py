"""Admin API routes for console roles, sign-in links and the audit log (the CLI's `spendgate roles`,
`spendgate console link` and `spendgate audit`). Included by `admin.api` under the master-key guard."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from spendgate import roles
from spendgate.audit import API_ACTOR, entry_view
from spendgate.gateway import Gateway
from spendgate.store.people import ROLES


class RoleIn(BaseModel):
    user: str = Field(min_length=1, description="User name, id or email.", examples=["ada@acme.example"])
    role: str = Field(description="One of " + ", ".join(ROLES) + ".", examples=["lead"])
    team: str | None = Field(None, description="The team a lead leads (lead only).", examples=["platform"])


class RoleOut(BaseModel):
    user: str
    user_id: str
    email: str | None = None
    role: str
    team: str | None = None
    team_id: str | None = None
    granted_by: str | None = None
    granted_at: str | None = None
    changed: bool | None = Field(None, description="False when granting a role already held.")


class LinkIn(BaseModel):
    user: str = Field(min_length=1, description="User name, id or email.")


class LinkOut(BaseModel):
    url: str = Field(description="Signs the user in once, within 15 minutes. Shown this once.")
    user: str
    expires_at: str


class AuditOut(BaseModel):
    id: str
    at: str
    actor: str
    via: str
    action: str
    target: str
    team: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


def roles_routes(gw: Gateway) -> APIRouter:
    router = APIRouter()
    store = gw.store

    @router.get("/roles", tags=["roles"])
    def list_roles(
        user: str | None = Query(None, description="Only this user's roles."),
        team: str | None = Query(None, description="Only this team's leads."),
    ) -> list[RoleOut]:
        return [RoleOut(**row) for row in roles.list_grants(store, user, team)]

    @router.post("/roles/grant", tags=["roles"], status_code=201)
    def grant(body: RoleIn) -> RoleOut:
        return RoleOut(**roles.grant(store, API_ACTOR.get(), body.user, body.role, body.team))

    @router.post("/roles/revoke", tags=["roles"])
    def revoke(body: RoleIn) -> RoleOut:
        return RoleOut(**roles.revoke(store, API_ACTOR.get(), body.user, body.role, body.team))

    @router.post("/signin-links", tags=["roles"], status_code=201)
    def signin_link(body: LinkIn) -> LinkOut:
        from spendgate.console.links import mint

        url, person, expires = mint(
            store, API_ACTOR.get(), body.user, gw.settings.ui_public_url, datetime.now(UTC)
        )
        return LinkOut(url=url, user=person.email or person.name, expires_at=expires)

    @router.get("/audit", tags=["audit"])
    def audit(
        since: str | None = Query(None, description="ISO date or datetime, inclusive."),
        actor: str | None = Query(None, description="Only changes by this actor."),
        action: str | None = Query(None, description="e.g. key.create, or key for every key change."),
        limit: int = Query(200, ge=1, le=10_000),
    ) -> list[AuditOut]:
        from spendgate.admin.service import maybe_time

        names = {t.id: t.name for t in store.list_teams(include_revoked=True)}
        entries = store.list_audit(since=maybe_time(since), actor=actor, action=action, limit=limit)
        return [AuditOut(**entry_view(e, names)) for e in entries]

    return router
