"""The HTTP admin API, mounted at /admin: orgs, teams, users, keys, spend and the ledger.

Every route needs the master key. The operations themselves live in `admin.service`
(shared with the CLI); this module only adds HTTP, auth and the keyring updates that
make a new or revoked key take effect at once in this process.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from spendgate import __version__
from spendgate.admin import service
from spendgate.admin.budgets_api import budget_routes
from spendgate.admin.inputs import MAX_TEXT_CHARS, AdminInput, Name
from spendgate.admin.roles_api import roles_routes
from spendgate.audit import API_ACTOR, api_actor, audited
from spendgate.dimensions import SPEND_BY
from spendgate.gateway import Gateway
from spendgate.ledger.quarantine import refused_for_good
from spendgate.models import ApiKey, Org, Team, User
from spendgate.providers.base import has_control_chars
from spendgate.store.base import Conflict, NotFound
from spendgate.store.principals import PrincipalStore

# --- request / response models (they make /admin/openapi.json meaningful) ---


class ErrorDetail(BaseModel):
    type: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class OrgIn(AdminInput):
    name: Name = Field(examples=["acme"])


class OrgOut(BaseModel):
    id: str
    name: str
    created_at: str
    revoked_at: str | None = None


class TeamIn(AdminInput):
    org: str = Field(min_length=1, description="Org name or id.", examples=["acme"])
    name: Name = Field(examples=["platform"])
    cost_center: str = Field(min_length=1, examples=["CC-100"])


class TeamOut(BaseModel):
    id: str
    org_id: str
    name: str
    cost_center: str
    created_at: str
    revoked_at: str | None = None


class UserIn(AdminInput):
    team: str = Field(min_length=1, description="Team name or id.", examples=["platform"])
    name: Name = Field(examples=["ada"])
    email: str | None = Field(None, examples=["ada@example.com"])


class UserOut(BaseModel):
    id: str
    team_id: str
    name: str
    email: str | None = None
    created_at: str
    revoked_at: str | None = None


class KeyIn(AdminInput):
    name: Name = Field(examples=["ada-laptop"])
    team: str = Field(min_length=1, description="Team name or id.", examples=["platform"])
    user: str | None = Field(None, description="User name or id (must be in the team).")
    use_case: str | None = Field(None, description="Default use case for calls made with this key.")
    tags: dict[Name, Name] = Field(
        default_factory=dict, max_length=32, description="Default tags for calls with this key."
    )
    expires_at: str | None = Field(
        None, description="ISO-8601 date or datetime (UTC unless it has an offset).", examples=["2026-12-31"]
    )


class KeyOut(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="The first characters of the secret, to recognise it.")
    org_id: str
    team_id: str
    user_id: str | None = None
    default_use_case: str | None = None
    default_tags: dict[str, str] = Field(default_factory=dict)
    created_at: str
    expires_at: str | None = None
    revoked_at: str | None = None


class KeyCreated(KeyOut):
    key: str = Field(description="The secret virtual key. Shown this once; only its hash is stored.")


class SpendRow(BaseModel):
    """One group; the group's name is under a key named after `by` (e.g. "team")."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    requests: int
    input_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    cache_read_tokens: int
    output_tokens: int
    reasoning_tokens: int
    estimated_requests: int
    cost_usd: str = Field(description="Exact decimal dollars.", examples=["0.0045"])


class LedgerEntry(BaseModel):
    request_id: str
    provider: str
    endpoint: str
    started_at: str
    first_byte_at: str | None = None
    ended_at: str
    org_id: str | None = None
    team_id: str | None = None
    team: str | None = Field(None, description="The team's name.")
    user_id: str | None = None
    key_id: str | None = None
    cost_center: str | None = None
    use_case: str
    tags: dict[str, str] = Field(default_factory=dict)
    session_id: str | None = None
    agent_id: str | None = None
    parent_agent_id: str | None = None
    client_request_id: str | None = None
    requested_model: str | None = None
    upstream_model: str | None = None
    response_model: str | None = None
    input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    web_search_requests: int = 0
    cost_nanos: int = Field(0, description="Exact cost in nano-dollars (1 USD = 1e9).")
    cost_usd: str = Field(description="Exact decimal dollars.")
    price_ref: str | None = None
    pricing_tier: str | None = None
    estimated: bool = False
    streamed: bool = False
    status_code: int
    status: str
    error_type: str | None = None
    upstream_request_id: str | None = None
    user_agent: str | None = None


# --- errors ---


class AdminError(Exception):
    def __init__(self, status_code: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.kind = kind
        self.message = message


def _error(status_code: int, kind: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, **extra}}, status_code=status_code)


def _install_error_handlers(app: FastAPI) -> None:
    async def admin_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AdminError)
        response = _error(exc.status_code, exc.kind, exc.message)
        if exc.status_code == 401:
            response.headers["www-authenticate"] = "Bearer"
        return response

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return _error(404, "not_found_error", str(exc))

    async def conflict(request: Request, exc: Exception) -> JSONResponse:
        return _error(409, "conflict_error", str(exc))

    async def bad_value(request: Request, exc: Exception) -> JSONResponse:
        return _error(400, "invalid_request_error", str(exc))

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        details = jsonable_encoder([{k: e.get(k) for k in ("loc", "msg", "type")} for e in errors])
        return _error(422, "invalid_request_error", message, details=details)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error(exc.status_code, kind, str(exc.detail))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never a stack trace or plain text: a value the database refused is the caller's to mend.
        if refused_for_good(exc):
            return _error(400, "invalid_request_error", "the database refused a value of this request")
        return _error(500, "api_error", "internal error; see the gateway's log")

    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(AdminError, admin_error)
    app.add_exception_handler(NotFound, not_found)
    # Conflict subclasses ValueError; Starlette picks the most specific handler by MRO.
    app.add_exception_handler(Conflict, conflict)
    app.add_exception_handler(ValueError, bad_value)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)


# --- auth ---


def check_master(gw: Gateway, presented: str | None) -> None:
    """Raise the AdminError a caller without the master key gets."""
    master = gw.settings.master_key
    if master is None:
        raise AdminError(
            403,
            "permission_error",
            "The admin API is disabled: set SPENDGATE_MASTER_KEY to a secret and send it as "
            "'Authorization: Bearer <master key>' or 'x-api-key'.",
        )
    if not presented:
        raise AdminError(
            401,
            "authentication_error",
            "Send the master key as 'Authorization: Bearer <master key>' or 'x-api-key'.",
        )
    # Compare as bytes: compare_digest rejects non-ASCII str.
    if not secrets.compare_digest(presented.encode(), master.get_secret_value().encode()):
        raise AdminError(401, "authentication_error", "Invalid master key.")


async def _clean_refs(request: Request) -> None:
    """Names and ids in the path and query: bounded text without control characters."""
    for where, value in (*request.path_params.items(), *request.query_params.items()):
        text = str(value)
        if len(text) > MAX_TEXT_CHARS or has_control_chars(text):
            raise AdminError(
                400, "invalid_request_error", f"{where}: must be text without control characters"
            )


def _master_guard(gw: Gateway) -> Callable[..., Awaitable[None]]:
    bearer_scheme = HTTPBearer(auto_error=False, description="The master key (SPENDGATE_MASTER_KEY).")
    header_scheme = APIKeyHeader(
        name="x-api-key", auto_error=False, description="The master key (SPENDGATE_MASTER_KEY)."
    )

    async def require_master(
        bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
        x_api_key: str | None = Security(header_scheme),
    ) -> None:
        check_master(gw, x_api_key or (bearer.credentials if bearer else None))

    return require_master


async def _name_actor(
    x_spendgate_actor: str | None = Header(None, description="Who is acting, for the audit log."),
) -> None:
    API_ACTOR.set(api_actor(x_spendgate_actor))


# --- routes ---

_REVOKED_HELP = "Also list revoked entries."


def _org(org: Org) -> OrgOut:
    return OrgOut(id=org.id, name=org.name, created_at=org.created_at, revoked_at=org.revoked_at)


def _team(team: Team) -> TeamOut:
    return TeamOut(
        id=team.id,
        org_id=team.org_id,
        name=team.name,
        cost_center=team.cost_center,
        created_at=team.created_at,
        revoked_at=team.revoked_at,
    )


def _user(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        team_id=user.team_id,
        name=user.name,
        email=user.email,
        created_at=user.created_at,
        revoked_at=user.revoked_at,
    )


def _key(key: ApiKey) -> KeyOut:
    return KeyOut(**service.key_view(key))


def _principal_routes(gw: Gateway) -> APIRouter:
    # Plain `def` routes: FastAPI runs them in its threadpool, as the store is blocking.
    router = APIRouter()
    store: PrincipalStore = gw.store

    @router.get("/orgs", tags=["orgs"])
    def list_orgs(include_revoked: bool = Query(False, description=_REVOKED_HELP)) -> list[OrgOut]:
        return [_org(o) for o in store.list_orgs(include_revoked)]

    @router.post("/orgs", tags=["orgs"], status_code=201)
    def create_org(body: OrgIn) -> OrgOut:
        return _org(store.create_org(body.name))

    @router.post("/orgs/{ref}/revoke", tags=["orgs"])
    def revoke_org(ref: str) -> OrgOut:
        org = store.revoke_org(ref)
        gw.keyring.reload()  # its keys stop working now, not at the next refresh
        return _org(org)

    @router.get("/teams", tags=["teams"])
    def list_teams(include_revoked: bool = Query(False, description=_REVOKED_HELP)) -> list[TeamOut]:
        return [_team(t) for t in store.list_teams(include_revoked)]

    @router.post("/teams", tags=["teams"], status_code=201)
    def create_team(body: TeamIn) -> TeamOut:
        return _team(store.create_team(body.org, body.name, body.cost_center))

    @router.post("/teams/{ref}/revoke", tags=["teams"])
    def revoke_team(ref: str) -> TeamOut:
        team = store.revoke_team(ref)
        gw.keyring.reload()
        return _team(team)

    @router.get("/users", tags=["users"])
    def list_users(include_revoked: bool = Query(False, description=_REVOKED_HELP)) -> list[UserOut]:
        return [_user(u) for u in store.list_users(include_revoked)]

    @router.post("/users", tags=["users"], status_code=201)
    def create_user(body: UserIn) -> UserOut:
        return _user(store.create_user(body.team, body.name, body.email))

    @router.post("/users/{ref}/revoke", tags=["users"])
    def revoke_user(ref: str) -> UserOut:
        user = store.revoke_user(ref)
        gw.keyring.reload()
        return _user(user)

    @router.get("/keys", tags=["keys"])
    def list_keys(include_revoked: bool = Query(False, description=_REVOKED_HELP)) -> list[KeyOut]:
        return [_key(k) for k in store.list_keys(include_revoked)]

    @router.post("/keys", tags=["keys"], status_code=201)
    def create_key(body: KeyIn) -> KeyCreated:
        key, secret = service.create_key(
            store,
            name=body.name,
            team=body.team,
            user=body.user,
            use_case=body.use_case,
            tags=body.tags,
            expires_at=body.expires_at,
        )
        gw.keyring.reload()  # usable at once in this process
        return KeyCreated(key=secret, **service.key_view(key))

    def revoke(ref: str) -> KeyOut:
        key = store.revoke_key(ref)
        gw.keyring.forget(key.id)
        return _key(key)

    router.add_api_route(
        "/keys/{ref}/revoke",
        revoke,
        methods=["POST"],
        tags=["keys"],
        name="revoke_key",
        summary="Revoke a key (by id, name or prefix)",
    )
    router.add_api_route(
        "/keys/{ref}",
        revoke,
        methods=["DELETE"],
        tags=["keys"],
        name="delete_key",
        summary="Revoke a key (same as POST /keys/{ref}/revoke)",
    )
    return router


def _report_routes(gw: Gateway) -> APIRouter:
    router = APIRouter()
    store = gw.store

    @router.get("/spend", tags=["reports"])
    def spend(
        by: str = Query("team", description="Group by: " + ", ".join(SPEND_BY)),
        since: str | None = Query(None, description="ISO date or datetime, inclusive."),
        until: str | None = Query(None, description="ISO date or datetime, exclusive."),
    ) -> list[SpendRow]:
        return [SpendRow(**row) for row in service.spend_report(store, by, since, until)]

    @router.get("/ledger", tags=["reports"])
    def ledger(
        since: str | None = Query(None, description="ISO date or datetime, inclusive."),
        until: str | None = Query(None, description="ISO date or datetime, exclusive."),
        limit: int = Query(50, ge=1, le=10_000, description="How many of the latest rows."),
    ) -> list[LedgerEntry]:
        return [LedgerEntry(**row) for row in service.ledger_tail(store, limit, since, until)]

    return router


_DOCS_PATHS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


def create_admin_app(gw: Gateway) -> FastAPI:
    """The admin API. Mounted at /admin, so FastAPI's root_path makes /admin/openapi.json and
    /admin/docs resolve; they need the master key too unless SPENDGATE_ADMIN_DOCS_PUBLIC is set."""
    error_responses: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorBody, "description": text}
        for code, text in (
            (400, "Invalid value"),
            (401, "Missing or wrong master key"),
            (403, "Admin API disabled (no SPENDGATE_MASTER_KEY)"),
            (404, "Not found"),
            (409, "Conflict"),
        )
    }
    # Changes through the API land in the audit log (actor: the master key, named by x-spendgate-actor).
    gw = dataclasses.replace(gw, store=audited(gw.store, API_ACTOR.get))
    app = FastAPI(
        title="Spendgate admin API",
        version=__version__,
        description="Manage orgs, teams, users, virtual keys, budgets and exemptions; read spend and the "
        "ledger.",
        dependencies=[Depends(_master_guard(gw)), Depends(_clean_refs), Depends(_name_actor)],
        responses=error_responses,
    )
    _install_error_handlers(app)
    if not gw.settings.admin_docs_public:
        # FastAPI serves its docs outside the app's dependencies: guard them here.
        @app.middleware("http")
        async def guard_docs(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
            if request.url.path.endswith(_DOCS_PATHS):
                auth = request.headers.get("authorization", "")
                bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
                try:
                    check_master(gw, request.headers.get("x-api-key") or bearer)
                except AdminError as exc:
                    return _error(exc.status_code, exc.kind, exc.message)
            return await call_next(request)

    app.include_router(_principal_routes(gw))
    app.include_router(_report_routes(gw))
    app.include_router(budget_routes(gw))
    app.include_router(roles_routes(gw))
    return app
