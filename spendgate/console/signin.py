"""Sign-in and sign-out routes: the sign-in page, one-time links, OIDC, and the end of a session.

Every successful sign-in starts a session (`sessions.start`) and is written to the audit log;
so is a refused one, with why, when it names a person.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from spendgate.audit import Actor, record
from spendgate.clock import iso
from spendgate.console import links, sessions
from spendgate.console.context import Page
from spendgate.console.oidc import SignInError
from spendgate.roles import roles_from_groups

if TYPE_CHECKING:
    from spendgate.console.app import Console


def safe_next(value: str | None) -> str:
    """Only paths inside the console: never an open redirect to another site."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/me"


def routes(console: Console) -> list[Route]:
    store = console.store

    def page(request: Request, template: str, title: str, status: int = 200, **data: object) -> Response:
        return console.render(request, None, Page(template, dict(data), title, status))

    async def signin_page(request: Request) -> Response:
        viewer, _ = await asyncio.to_thread(console.viewer, request, console.clock())
        nxt = safe_next(request.query_params.get("next"))
        if viewer is not None:
            return RedirectResponse(nxt, 303)
        return page(
            request,
            "signin.html",
            "Sign in",
            mode=console.settings.ui_auth,
            next=nxt,
            user_header=console.settings.ui_user_header,
        )

    async def link_confirm(request: Request) -> Response:
        # GET only shows a button: mail scanners that open links must not use up a one-time link.
        return page(request, "signin_link.html", "Sign in", token=request.query_params.get("token", ""))

    async def link_use(request: Request) -> Response:
        form = await request.form()
        token = str(form.get("token", ""))
        return await asyncio.to_thread(_use_link, request, token)

    def _use_link(request: Request, token: str) -> Response:
        now = console.clock()
        user_id = links.redeem(store, token, now)
        if user_id is None:
            return page(
                request,
                "signin.html",
                "Sign in",
                401,
                mode=console.settings.ui_auth,
                next="/ui/me",
                error="This sign-in link is unknown, already used or expired (links last 15 minutes, once). "
                "Ask for a new one: spendgate console link --user EMAIL",
            )
        user = store.get_user(user_id)
        return _signed_in(request, user.id, user.email or user.name, user.team_id, "link", (), "/ui/me")

    def _signed_in(
        request: Request,
        user_id: str,
        email: str,
        team_id: str,
        method: str,
        roles: tuple[str, ...],
        nxt: str,
    ) -> Response:
        token, _ = sessions.start(
            store, user_id, method, roles, console.settings.ui_session_hours, console.clock()
        )
        record(
            store, Actor(email, "console"), "signin", email, team_id, method=method, roles=list(roles) or None
        )
        response = RedirectResponse(nxt, 303)
        sessions.set_cookie(
            response,
            token,
            secure=console.secure(request),
            max_age_s=int(console.settings.ui_session_hours * 3600),
        )
        return response

    async def oidc_start(request: Request) -> Response:
        if console.oidc is None:
            return page(
                request,
                "signin.html",
                "Sign in",
                404,
                mode=console.settings.ui_auth,
                next="/ui/me",
                error="Sign-in with an identity provider is not configured (SPENDGATE_UI_AUTH=oidc).",
            )
        redirect_uri = f"{console.base_url(request)}/ui/signin/oidc/callback"
        nxt = safe_next(request.query_params.get("next"))
        try:
            url = await console.oidc.begin(store, redirect_uri, nxt, console.clock())
        except (SignInError, OSError) as exc:
            return page(
                request,
                "signin.html",
                "Sign in",
                502,
                mode="oidc",
                next=nxt,
                error=f"Could not reach the identity provider: {exc}",
            )
        return RedirectResponse(url, 303)

    async def oidc_callback(request: Request) -> Response:
        if console.oidc is None:
            return Response(status_code=404)
        redirect_uri = f"{console.base_url(request)}/ui/signin/oidc/callback"
        try:
            identity = await console.oidc.finish(
                store, dict(request.query_params), redirect_uri, console.clock()
            )
        except (SignInError, OSError) as exc:
            return page(request, "signin.html", "Sign in", 401, mode="oidc", next="/ui/me", error=str(exc))
        return await asyncio.to_thread(
            _oidc_user, request, identity.email, identity.groups, identity.next_path
        )

    def _oidc_user(request: Request, email: str, groups: tuple[str, ...], nxt: str) -> Response:
        users = store.users_by_email(email)
        if len(users) != 1:
            why = "no Spendgate user has" if not users else f"{len(users)} Spendgate users share"
            record(store, Actor(email, "console"), "signin.refused", email, None, method="oidc", reason=why)
            return page(
                request,
                "signin.html",
                "Sign in",
                403,
                mode="oidc",
                next="/ui/me",
                error=f"Signed in as {email}, but {why} this email. Ask an admin: "
                f"spendgate users create NAME --team TEAM --email {email}",
            )
        roles = roles_from_groups(console.group_roles, groups)
        return _signed_in(request, users[0].id, email, users[0].team_id, "oidc", roles, safe_next(nxt))

    async def signout(request: Request) -> Response:
        form = await request.form()
        return await asyncio.to_thread(_signout, request, str(form.get("csrf", "")))

    def _signout(request: Request, csrf: str) -> Response:
        session = sessions.live(store, request.cookies.get(sessions.COOKIE), console.clock())
        response = RedirectResponse("/ui/signin?signed_out=1", 303)
        if session is not None and sessions.csrf_ok(session, csrf):
            store.end_ui_session(session.token_hash, iso(console.clock()))
            user = store.get_user(session.user_id)
            record(
                store,
                Actor(user.email or user.name, "console"),
                "signout",
                user.email or user.name,
                user.team_id,
            )
        sessions.clear_cookie(response, secure=console.secure(request))
        return response

    return [
        Route("/signin", signin_page, methods=["GET"]),
        Route("/signin/link", link_confirm, methods=["GET"]),
        Route("/signin/link", link_use, methods=["POST"]),
        Route("/signin/oidc", oidc_start, methods=["GET"]),
        Route("/signin/oidc/callback", oidc_callback, methods=["GET"]),
        Route("/signout", signout, methods=["POST"]),
    ]
