"""The web console under /ui/: sign-in, the pages, and the checks every request passes.

Order of a request: security headers (outermost, on every answer) -> who is signed in (session
cookie, or a trusted proxy's header) -> CSRF token on anything that changes state -> the page's
own role check -> the handler, in a worker thread (the store is blocking).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spendgate.audit import Actor, record
from spendgate.config import Settings
from spendgate.console import links, sessions
from spendgate.console.context import Ctx, Forbidden, Handler, Page, Viewer
from spendgate.console.oidc import OidcClient, SignInError
from spendgate.console.proxyauth import TrustedHeader
from spendgate.console.render import html_response, json_response, templates, wants_json
from spendgate.gateway import Gateway
from spendgate.models import User
from spendgate.roles import effective_roles, parse_group_roles, roles_from_groups
from spendgate.store.base import Conflict, NotFound

# No scripts at all; styles and images from the console itself; forms post only to it.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    # same-origin: sign-in links carry their token in the URL, so no other site may see it in a
    # Referer; not no-referrer, under which browsers send "Origin: null" with our own form posts.
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *(h for h in SECURITY_HEADERS if h[0] not in names),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True, slots=True)
class Console:
    gw: Gateway
    settings: Settings
    env: Environment
    header: TrustedHeader | None
    oidc: OidcClient | None
    group_roles: dict[str, tuple[str, ...]]
    clock: Callable[[], datetime]

    @property
    def store(self) -> Any:
        return self.gw.store

    def base_url(self, request: Request) -> str:
        return (self.settings.ui_public_url or str(request.base_url)).rstrip("/").removesuffix("/ui")

    def secure(self, request: Request) -> bool:
        return request.url.scheme == "https" or (self.settings.ui_public_url or "").startswith("https://")

    # --- who is signed in (blocking) ---
    def viewer(self, request: Request, now: datetime) -> tuple[Viewer | None, str | None]:
        """(the viewer, a new session token to set as cookie) for this request."""
        token = request.cookies.get(sessions.COOKIE)
        session = sessions.live(self.store, token, now)
        if self.header is not None:
            identity = self.header.identity(request)
            if identity is not None:
                email, groups = identity
                user = self._user_for(email)
                if user is None:
                    return None, None
                if session is None or session.user_id != user.id or session.method != "header":
                    # The proxy vouches for every request; the session holds the CSRF token.
                    roles = roles_from_groups(self.group_roles, groups)
                    token, session = sessions.start(
                        self.store, user.id, "header", roles, self.settings.ui_session_hours, now
                    )
                    record(
                        self.store, Actor(email, "console"), "signin", email, user.team_id, method="header"
                    )
                    return self._viewer_of(user, session), token
                return self._viewer_of(user, session), None
        if session is None:
            return None, None
        if session.method == "header" and self.header is not None:
            return None, None  # the proxy no longer vouches for this browser
        try:
            user = self.store.get_user(session.user_id)
        except NotFound:
            return None, None
        if user.revoked_at is not None:
            return None, None
        return self._viewer_of(user, session), None

    def _viewer_of(self, user: User, session: Any) -> Viewer:
        roles = effective_roles(self.store, user.id, session.roles)
        led: tuple[tuple[str, str], ...] = ()
        if roles.lead_of:
            led = tuple((t.id, t.name) for t in self.store.list_teams() if t.id in roles.lead_of)
        return Viewer(user, roles, session, led)

    def _user_for(self, email: str) -> User | None:
        users = self.store.users_by_email(email)
        return users[0] if len(users) == 1 else None

    # --- pages ---
    def endpoint(self, handler: Handler) -> Callable[[Request], Any]:
        async def serve(request: Request) -> Response:
            form: dict[str, str] = {}
            if request.method == "POST":
                content_type = request.headers.get("content-type", "")
                if content_type.startswith("application/json"):
                    body = await request.json()
                    form = {str(k): str(v) for k, v in (body or {}).items()} if isinstance(body, dict) else {}
                else:
                    form = {k: str(v) for k, v in (await request.form()).items() if isinstance(v, str)}
            return await asyncio.to_thread(self._serve, request, form, handler)

        return serve

    def _serve(self, request: Request, form: dict[str, str], handler: Handler) -> Response:
        now = self.clock()
        viewer, new_token = self.viewer(request, now)
        if viewer is None:
            if wants_json(request):
                return json_response(
                    {"error": {"type": "authentication_error", "message": "sign in first"}}, 401
                )
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/ui/signin?next={quote(target)}", 303)
        if request.method != "GET":
            presented = form.get("csrf") or request.headers.get("x-csrf-token")
            origin = request.headers.get("origin")
            if not sessions.csrf_ok(viewer.session, presented) or (
                origin and not self._same_origin(request, origin)
            ):
                return self._error(
                    request, viewer, 403, "The form was stale or came from another site; reload the page."
                )
        ctx = Ctx(self.gw, self.settings, request, viewer, form, now)
        try:
            result = handler(ctx)
        except Forbidden as exc:
            response = self._error(request, viewer, 403, str(exc))
        except NotFound as exc:
            response = self._error(request, viewer, 404, str(exc))
        except (Conflict, ValueError) as exc:
            response = self._error(request, viewer, 400, str(exc))
        else:
            response = result if isinstance(result, Response) else self.render(request, viewer, result)
        if new_token:
            sessions.set_cookie(
                response,
                new_token,
                secure=self.secure(request),
                max_age_s=int(self.settings.ui_session_hours * 3600),
            )
        return response

    def _same_origin(self, request: Request, origin: str) -> bool:
        allowed = {f"{request.url.scheme}://{request.url.netloc}"}
        if self.settings.ui_public_url:
            parts = urlsplit(self.settings.ui_public_url)
            allowed.add(f"{parts.scheme}://{parts.netloc}")
        return origin in allowed

    def render(self, request: Request, viewer: Viewer | None, page: Page) -> Response:
        if wants_json(request):
            return json_response(page.data, page.status)
        context = {
            "page": page.data,
            "title": page.title,
            "viewer": viewer,
            "csrf": viewer.session.csrf_token if viewer else "",
            "path": request.url.path,
            **page.extra,
        }
        return html_response(self.env, page.template, context, page.status)

    def _error(self, request: Request, viewer: Viewer | None, status: int, message: str) -> Response:
        kind = {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}.get(
            status, "invalid_request_error"
        )
        if wants_json(request):
            return json_response({"error": {"type": kind, "message": message}}, status)
        page = Page(
            "error.html",
            {"status": status, "message": message},
            "Not allowed" if status == 403 else "Error",
            status,
        )
        return self.render(request, viewer, page)


def build_console(gw: Gateway, clock: Callable[[], datetime] | None = None) -> Console:
    settings = gw.settings
    header = None
    if settings.ui_auth == "header":
        header = TrustedHeader.parse(
            settings.ui_user_header, settings.ui_groups_header, settings.ui_trusted_proxies
        )
    oidc = None
    if settings.ui_auth == "oidc":
        if not (settings.ui_oidc_issuer and settings.ui_oidc_client_id):
            raise ValueError(
                "SPENDGATE_UI_AUTH=oidc needs SPENDGATE_UI_OIDC_ISSUER and SPENDGATE_UI_OIDC_CLIENT_ID"
            )
        secret = settings.ui_oidc_client_secret
        oidc = OidcClient(
            settings.ui_oidc_issuer,
            settings.ui_oidc_client_id,
            secret.get_secret_value() if secret else None,
            settings.ui_oidc_scopes,
            settings.ui_oidc_groups_claim,
        )
    return Console(
        gw=gw,
        settings=settings,
        env=templates(),
        header=header,
        oidc=oidc,
        group_roles=parse_group_roles(settings.ui_group_roles),
        clock=clock or (lambda: datetime.now(UTC)),
    )


def create_console_app(gw: Gateway, clock: Callable[[], datetime] | None = None) -> ASGIApp:
    """The console, to mount at /ui."""
    from spendgate.console import signin
    from spendgate.console.pages import audit_page, exemptions, me, org, rollout, team

    console = build_console(gw, clock)
    page = console.endpoint
    routes = [
        Route("/", lambda request: RedirectResponse("/ui/me", 303), methods=["GET"]),
        *signin.routes(console),
        Route("/me", page(me.show), methods=["GET"]),
        Route("/me/keys", page(me.create_key), methods=["POST"]),
        Route("/me/keys/{key_id}/revoke", page(me.revoke_key), methods=["POST"]),
        Route("/teams/{team}", page(team.show), methods=["GET"]),
        Route("/org", page(org.show), methods=["GET"]),
        Route("/org/focus.csv", page(org.focus_csv), methods=["GET"]),
        Route("/org/reports/{report}.html", page(org.report_html), methods=["GET"]),
        Route("/exemptions", page(exemptions.show), methods=["GET"]),
        Route("/exemptions", page(exemptions.request), methods=["POST"]),
        Route("/exemptions/{exemption_id}", page(exemptions.detail), methods=["GET"]),
        Route("/exemptions/{exemption_id}/decide", page(exemptions.decide), methods=["POST"]),
        Route("/audit", page(audit_page.show), methods=["GET"]),
        Route("/rollout", page(rollout.show), methods=["GET"]),
    ]
    from spendgate.console import static_dir

    app = Starlette(routes=[*routes])
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    return SecurityHeaders(app)


__all__ = ["Console", "SignInError", "create_console_app", "links"]
