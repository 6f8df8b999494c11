"""One-time sign-in links for the embedded default (`spendgate console link --user EMAIL`): a URL
valid for 15 minutes that signs its holder in once. Only the token's SHA-256 is stored."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from spendgate.audit import Actor, record
from spendgate.clock import iso
from spendgate.console.sessions import token_hash
from spendgate.models import User
from spendgate.store.people import PeopleStore

LINK_MINUTES = 15
DEFAULT_BASE_URL = "http://127.0.0.1:8787"


def mint(
    store: PeopleStore, actor: Actor, user: str, base_url: str | None, now: datetime
) -> tuple[str, User, str]:
    """(the sign-in URL, the user, when it expires); the URL is shown once and never stored."""
    person = store.get_user(user)
    if person.revoked_at is not None:
        raise ValueError(f"user {person.name} is revoked")
    token = secrets.token_urlsafe(32)
    expires = iso(now + timedelta(minutes=LINK_MINUTES))
    store.create_signin_link(
        token_hash=token_hash(token),
        user_id=person.id,
        created_by=actor.who,
        created_at=iso(now),
        expires_at=expires,
    )
    record(
        store, actor, "signin_link.create", person.email or person.name, person.team_id, expires_at=expires
    )
    root = (base_url or DEFAULT_BASE_URL).rstrip("/")
    return f"{root}/ui/signin/link?token={token}", person, expires


def redeem(store: PeopleStore, token: str, now: datetime) -> str | None:
    """The user id the link signs in, once, while valid; None for an unknown, used or expired link."""
    if not token or len(token) > 100:
        return None
    return store.use_signin_link(token_hash(token), iso(now))
