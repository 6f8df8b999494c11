"""Step 1, auth: a virtual key in `x-api-key` or `Authorization: Bearer` -> a Principal.

Keys are random 256-bit tokens; only their SHA-256 is stored (a slow hash buys nothing
against keys that cannot be guessed, and this runs on every call). Usable keys live
in memory, reloaded in the background, so the hot path never touches the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping

from spendgate.clock import utc_now_iso
from spendgate.models import Principal
from spendgate.providers.base import ClientError

log = logging.getLogger(__name__)

KEY_PREFIX = "sk-sg-"


def generate_key() -> tuple[str, str, str]:
    """A new virtual key: (secret shown once, its hash, a display prefix)."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return secret, hash_key(secret), secret[:12]


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def presented_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


class Keyring:
    """The in-memory view of usable keys, by hash."""

    def __init__(self, load: Callable[[], dict[str, Principal]], refresh_s: float) -> None:
        self._load = load
        self._refresh_s = refresh_s
        self._by_hash: dict[str, Principal] = {}
        self._last_miss_reload = 0.0

    def reload(self) -> None:
        self._by_hash = self._load()

    def put(self, key_hash: str, principal: Principal) -> None:
        self._by_hash = {**self._by_hash, key_hash: principal}

    def forget(self, key_id: str) -> None:
        self._by_hash = {h: p for h, p in self._by_hash.items() if p.key_id != key_id}

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        secret = presented_key(headers)
        if not secret:
            raise ClientError(
                401,
                "authentication_error",
                "No Spendgate key: send your virtual key as x-api-key or 'Authorization: Bearer <key>'.",
            )
        digest = hash_key(secret)
        principal = self._by_hash.get(digest)
        if principal is None and time.monotonic() - self._last_miss_reload > 1.0:
            # A key made a moment ago by another process: look once, at most once a second.
            self._last_miss_reload = time.monotonic()
            await asyncio.to_thread(self.reload)
            principal = self._by_hash.get(digest)
        if principal is None:
            raise ClientError(401, "authentication_error", "Invalid Spendgate key: unknown or revoked.")
        if principal.expires_at is not None and principal.expires_at <= utc_now_iso():
            raise ClientError(
                401, "authentication_error", f"This Spendgate key expired at {principal.expires_at}."
            )
        return principal

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await asyncio.to_thread(self.reload)
            except Exception:  # keep serving with the keys we have
                log.exception("key reload failed")
