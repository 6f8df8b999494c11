"""Console sessions: a random token in an HttpOnly cookie, only its SHA-256 in the database, with a
CSRF token and an expiry. Every sign-in method ends here, so sessions look the same whichever way
a person came in (and a replica can serve a session another replica started)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from starlette.responses import Response

from spendgate.clock import iso
from spendgate.store.people import PeopleStore, UiSession

COOKIE = "spendgate_session"
METHODS = ("oidc", "header", "link")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(
    store: PeopleStore, user_id: str, method: str, roles: Sequence[str], hours: float, now: datetime
) -> tuple[str, UiSession]:
    """A new session: (the cookie's token, the stored session)."""
    token = secrets.token_urlsafe(32)
    session = UiSession(
        token_hash=token_hash(token),
        user_id=user_id,
        method=method,
        roles=tuple(roles),
        csrf_token=secrets.token_urlsafe(32),
        created_at=iso(now),
        expires_at=iso(now + timedelta(hours=hours)),
    )
    store.create_ui_session(session)
    return token, session


def live(store: PeopleStore, token: str | None, now: datetime) -> UiSession | None:
    """The session for a cookie's token, unless it ended or expired."""
    if not token or len(token) > 100:
        return None
    session = store.ui_session(token_hash(token))
    if session is None or session.ended_at is not None or session.expires_at <= iso(now):
        return None
    return session


def set_cookie(response: Response, token: str, *, secure: bool, max_age_s: int) -> None:
    # HttpOnly: no script reads it; SameSite=Lax: not sent on cross-site POSTs; Secure over TLS.
    response.set_cookie(
        COOKIE, token, max_age=max_age_s, path="/ui", httponly=True, secure=secure, samesite="lax"
    )


def clear_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(COOKIE, path="/ui", httponly=True, secure=secure, samesite="lax")


def csrf_ok(session: UiSession, presented: str | None) -> bool:
    return bool(presented) and secrets.compare_digest(str(presented).encode(), session.csrf_token.encode())
