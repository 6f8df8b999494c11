"""Held routing decisions: which model a session (and agent) keeps, so its prompt cache survives.

Prompt caches are per model, so the first sticky decision of a session holds for the calls that
follow (docs/routing.md). With one process the decisions live in memory (`LocalSticky`); with
several replicas behind a load balancer a session's calls land on any of them, so they share the
decisions through Redis (`RedisSticky`) when `SPENDGATE_REDIS_URL` is set.

Redis is an aid here, never a dependency: each replica keeps what it read or decided in memory
too, and when Redis fails (down, slow, refusing) the call is routed on the local copy and Redis is
left alone for a few seconds, so an outage neither fails calls nor slows each one by a timeout.
Decisions expire `ttl_s` after the session's last call (sliding), in both places.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from spendgate.routing.router import Held, RouteRequest

log = logging.getLogger(__name__)

LOCAL_MAX = 100_000  # sessions held in memory per process, least recently used dropped first
DEFAULT_TTL_S = 3600  # Anthropic's longest prompt-cache lifetime is one hour
REDIS_TIMEOUT_S = 0.25  # a slow Redis costs a call at most this, then the breaker opens
BREAKER_S = 5.0  # after a Redis failure, this long on local decisions only
RECHECK_S = 30.0  # a decision read from Redis is trusted locally this long (it never changes)

# First decision wins: a replica that decided too late gets the one already held.
_HOLD = """
local held = redis.call('GET', KEYS[1])
if held then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return held
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""

Key = tuple[str, str, str, str]  # provider, session, agent, requested model


def sticky_key(req: RouteRequest) -> Key | None:
    """Whose decision a call shares: its session, agent and requested model (None: no session)."""
    if not req.session:
        return None
    return (req.provider, req.session, req.agent or "", req.model)


class Sticky(Protocol):
    async def held(self, key: Key) -> Held | None:
        """The decision held for the key, if any (refreshing its expiry)."""
        ...

    async def hold(self, key: Key, decision: Held) -> Held:
        """Hold `decision` unless one is held already; returns the one in force."""
        ...

    async def close(self) -> None: ...


class LocalSticky:
    """Decisions in this process's memory: a bounded LRU with a sliding expiry."""

    def __init__(self, ttl_s: float = DEFAULT_TTL_S, max_entries: int = LOCAL_MAX) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._entries: OrderedDict[Key, tuple[Held, float]] = OrderedDict()

    def get(self, key: Key, *, slide: bool = True) -> Held | None:
        found = self._entries.get(key)
        if found is None:
            return None
        held, expires = found
        now = time.monotonic()
        if expires < now:
            del self._entries[key]
            return None
        if slide:
            self._entries[key] = (held, now + self._ttl_s)
        self._entries.move_to_end(key)
        return held

    def put(self, key: Key, held: Held) -> None:
        self._entries[key] = (held, time.monotonic() + self._ttl_s)
        self._entries.move_to_end(key)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def held(self, key: Key) -> Held | None:
        return self.get(key)

    async def hold(self, key: Key, decision: Held) -> Held:
        current = self.get(key)
        if current is not None:
            return current
        self.put(key, decision)
        return decision

    async def close(self) -> None:
        return None


class RedisSticky:
    """Decisions shared by every replica using the same Redis and prefix, with a local copy."""

    def __init__(self, url: str, prefix: str, ttl_s: float = DEFAULT_TTL_S) -> None:
        self._prefix = f"{prefix}sticky:"
        self._ttl_ms = int(ttl_s * 1000)
        self._local = LocalSticky(ttl_s)  # the fallback while Redis is unusable
        self._seen = LocalSticky(RECHECK_S)  # decisions read from Redis, trusted for a while
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=32,
            timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            socket_timeout=REDIS_TIMEOUT_S,
            decode_responses=True,
        )
        self._client: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._hold = self._client.register_script(_HOLD)
        self._closed_until = 0.0  # the breaker: no Redis call before this monotonic time

    def _redis_key(self, key: Key) -> str:
        # Sessions and agents are client strings: hashed, so no value can collide or bloat a key.
        return self._prefix + hashlib.blake2b("\0".join(key).encode(), digest_size=16).hexdigest()

    def _usable(self) -> bool:
        return time.monotonic() >= self._closed_until

    def _failed(self, exc: BaseException) -> None:
        if self._usable():
            log.warning("routing stickiness: Redis failed (%s); using this replica's decisions", exc)
        self._closed_until = time.monotonic() + BREAKER_S

    async def held(self, key: Key) -> Held | None:
        # Read from Redis less than RECHECK_S ago: still the one (a held decision never changes
        # before it expires); reading it again then also slides its expiry in Redis.
        seen = self._seen.get(key, slide=False)
        if seen is not None:
            return seen
        if self._usable():
            try:
                raw = await self._client.getex(self._redis_key(key), px=self._ttl_ms)
            except (RedisError, OSError, TimeoutError) as exc:
                self._failed(exc)
            else:
                if raw is None:
                    # Made here while Redis was down: shared now, unless another replica's came first.
                    local = self._local.get(key)
                    return None if local is None else await self.hold(key, local)
                held = _decode(str(raw))
                self._remember(key, held)
                return held
        return self._local.get(key)

    async def hold(self, key: Key, decision: Held) -> Held:
        if self._usable():
            try:
                raw = await self._hold(keys=[self._redis_key(key)], args=[_encode(decision), self._ttl_ms])
            except (RedisError, OSError, TimeoutError) as exc:
                self._failed(exc)
            else:
                held = _decode(str(raw))
                self._remember(key, held)
                return held
        return await self._local.hold(key, decision)

    def _remember(self, key: Key, held: Held) -> None:
        self._seen.put(key, held)
        self._local.put(key, held)

    async def close(self) -> None:
        await self._client.aclose()


def _encode(held: Held) -> str:
    return f"{held.model}\n{held.rule}"


def _decode(raw: str) -> Held:
    model, _, rule = raw.partition("\n")
    return Held(model, rule)
