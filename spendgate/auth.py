"""Step 1, auth: a virtual key in `x-api-key` or `Authorization: Bearer` -> a Principal.

Keys are random 256-bit tokens; only their SHA-256 is stored (a slow hash buys nothing
against keys that cannot be guessed, and this runs on every call). Usable keys live
in memory, reloaded in the background, so a known key never waits on the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Mapping
from typing import Protocol

from spendgate.clock import utc_now_iso
from spendgate.errors import AuthenticationFailed
from spendgate.models import Principal

log = logging.getLogger(__name__)

KEY_PREFIX = "sk-sg-"


def generate_key() -> tuple[str, str, str]:
    """A new virtual key: (secret shown once, its hash, a display prefix)."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return secret, hash_key(secret), secret[:12]


# CPython's own SHA-256: the same digest, and for a key's few bytes a fifth fewer instructions than
# OpenSSL's (hashlib's default), whose context setup outweighs the hashing. Its module is `_sha256`
# on 3.11 and `_sha2` from 3.12; an interpreter built without either uses hashlib's.
try:
    from _sha2 import sha256 as _sha256
except ImportError:
    try:
        from _sha256 import sha256 as _sha256
    except ImportError:
        _sha256 = hashlib.sha256


def hash_key(secret: str) -> str:
    digest: str = _sha256(secret.encode()).hexdigest()
    return digest


def presented_key(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


class PrincipalSource(Protocol):
    def __call__(self, key_hash: str | None = None) -> dict[str, Principal]:
        """Usable keys by hash: all of them, or only `key_hash`'s."""
        ...


class Keyring:
    """The in-memory view of usable keys, by hash.

    A key not in memory (made a moment ago by the CLI, the console or another replica) is looked
    up in the database at once, by its hash alone, off the event loop; calls presenting the same
    key meanwhile wait for that one lookup. A key the database does not know is remembered as
    unknown for `negative_ttl_s` (a new key is random, so it cannot have been presented before it
    existed), and only well-formed keys are looked up at all, at most `LOOKUPS_PER_S` a second:
    a flood of bad keys never reaches the database.
    """

    LOOKUPS_PER_S = 50
    MAX_UNKNOWN = 10_000  # remembered unknown keys; the oldest is forgotten first

    def __init__(self, load: PrincipalSource, refresh_s: float, negative_ttl_s: float = 30.0) -> None:
        self._load = load
        self._refresh_s = refresh_s
        self._negative_ttl_s = negative_ttl_s
        self._by_hash: dict[str, Principal] = {}
        self._unknown: dict[str, float] = {}  # key hash -> monotonic time it may be looked up again
        self._lookups: dict[str, asyncio.Future[Principal | None]] = {}
        self._window = (0.0, 0)  # (second, lookups started in it)
        self.lookups = 0  # database lookups of single keys (for /metrics)
        self.unknown_refused = 0  # calls refused from the unknown-key cache or past the lookup rate

    def reload(self) -> None:
        self._by_hash = self._load()

    def put(self, key_hash: str, principal: Principal) -> None:
        self._by_hash = {**self._by_hash, key_hash: principal}
        self._unknown.pop(key_hash, None)

    def forget(self, key_id: str) -> None:
        self._by_hash = {h: p for h, p in self._by_hash.items() if p.key_id != key_id}

    def known(self, headers: Mapping[str, str]) -> Principal | None:
        """The principal of a key in memory and unexpired, without a coroutine (the call path's
        usual case); None: `authenticate` decides (a lookup, or the reason for refusing)."""
        secret = headers.get("x-api-key")  # presented_key's usual case, inline
        secret = secret.strip() if secret else presented_key(headers)
        if not secret:
            return None
        principal = self._by_hash.get(_sha256(secret.encode()).hexdigest())  # hash_key, inline
        if principal is None or (principal.expires_at is not None and principal.expires_at <= utc_now_iso()):
            return None
        return principal

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        secret = presented_key(headers)
        if not secret:
            raise AuthenticationFailed(
                "No Spendgate key: send your virtual key as x-api-key or 'Authorization: Bearer <key>'."
            )
        digest = hash_key(secret)
        principal = self._by_hash.get(digest)
        if principal is None and _well_formed(secret):
            principal = await self._lookup(digest)
        if principal is None:
            raise AuthenticationFailed("Invalid Spendgate key: unknown or revoked.")
        if principal.expires_at is not None and principal.expires_at <= utc_now_iso():
            raise AuthenticationFailed(f"This Spendgate key expired at {principal.expires_at}.")
        return principal

    async def _lookup(self, digest: str) -> Principal | None:
        pending = self._lookups.get(digest)
        if pending is None:
            now = time.monotonic()
            if self._unknown.get(digest, 0.0) > now or not self._may_look_up(now):
                self.unknown_refused += 1
                return None
            pending = asyncio.ensure_future(self._fetch(digest))
            self._lookups[digest] = pending
            pending.add_done_callback(lambda _: self._lookups.pop(digest, None))
        # shield: one caller giving up (client gone) must not cancel the lookup the others await
        return await asyncio.shield(pending)

    def _may_look_up(self, now: float) -> bool:
        second, count = self._window
        if int(now) != second:
            second, count = int(now), 0
        if count >= self.LOOKUPS_PER_S:
            return False
        self._window = (second, count + 1)
        return True

    async def _fetch(self, digest: str) -> Principal | None:
        self.lookups += 1
        try:
            principal = (await asyncio.to_thread(self._load, digest)).get(digest)
        except Exception:  # the database is down: refuse this call, remember nothing
            log.exception("key lookup failed")
            return None
        if principal is not None:
            self.put(digest, principal)
            return principal
        if len(self._unknown) >= self.MAX_UNKNOWN:
            now = time.monotonic()
            self._unknown = {h: t for h, t in self._unknown.items() if t > now}
            while len(self._unknown) >= self.MAX_UNKNOWN:
                del self._unknown[next(iter(self._unknown))]
        self._unknown[digest] = time.monotonic() + self._negative_ttl_s
        return None

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await asyncio.to_thread(self.reload)
            except Exception:  # keep serving with the keys we have
                log.exception("key reload failed")


_KEY_CHARS = re.compile(r"[A-Za-z0-9_-]+")
_KEY_LENGTH = len(KEY_PREFIX) + 43  # token_urlsafe(32)


def _well_formed(secret: str) -> bool:
    """Shaped like a key `generate_key` makes: anything else is refused without a lookup."""
    return (
        len(secret) == _KEY_LENGTH
        and secret.startswith(KEY_PREFIX)
        and _KEY_CHARS.fullmatch(secret, len(KEY_PREFIX)) is not None
    )
