"""Budget counters and rate limits shared by every gateway replica through one Redis.

Same semantics as `LocalCounters`; each method is one Lua script (one round trip, atomic on
the server), so check-and-reserve across all the counters of a call cannot race with another
replica. Times come from the Redis server clock (`TIME`), so replicas with skewed clocks agree.

Key layout (every key starts with `prefix`):

    {p}c:{counter}   hash  s = settled spend, r = reserved (nanos); expires with its period
    {p}r:{id}        hash  a = amount, n = number of counters, "1".."n" = counter keys (no TTL:
                           the sweep removes it, so a counter's reservation is always given back)
    {p}expiry        zset  reservation id -> expiry (server ms), swept by `expire()`
    {p}rq:{key id}   zset  requests of the last 60 s (score: server ms)
    {p}rt:{key id}   zset  token entries of the last 60 s, member "<ms>:<nonce>:<tokens>"
    {p}rs:{key id}   str   sum of the tokens in rt (kept in step, so a check is O(1) amortised)
    {p}rc:{key id}   str   requests in flight (expires, so a crashed replica's slots come back)
    {p}sync:{id}     str   a replica's outage spend, added once (`add_spent`; expires after a day)

Amounts are int64 nanos. Lua numbers are doubles (exact only below 2**53, about $9M in nanos),
so the scripts never do arithmetic on amounts: HINCRBY does it in int64, and the limit check
compares decimal strings split into 9-digit halves (exact over the whole int64 range). The
reservation's settle, release and sweep touch the counter keys stored in it, so this needs a
single Redis (or a prefix with a hash tag on Redis Cluster).
"""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis

from spendgate.budgets.counters import Charge, RateResult, ReserveResult

DEFAULT_PREFIX = "spendgate:"
SWEEP_BATCH = 500  # reservations released per expire script run, so one run never stalls Redis
MAX_CONNECTIONS = 64  # per replica; scripts take tens of microseconds, so few connections suffice
POOL_WAIT_S = 5.0  # longest wait for a free connection before the call fails
SOCKET_TIMEOUT_S = 5.0  # a hung Redis fails the call rather than stalling the request forever
SLOT_TTL_S = 900  # the in-flight count lapses this long after a key's last request: crashed slots return

# Helpers shared by the scripts (each script is self-contained Lua).
_PRELUDE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end

-- '-' .. s, except that Redis rejects '-0' and '--5'
local function negate(s)
  if s == '0' then return '0' end
  if string.sub(s, 1, 1) == '-' then return string.sub(s, 2) end
  return '-' .. s
end

-- an int64 decimal string as (high, low) with value = high * 1e9 + low, both exact doubles
local function halves(s)
  local sign = 1
  if string.sub(s, 1, 1) == '-' then sign = -1; s = string.sub(s, 2) end
  local n = #s
  if n <= 9 then return 0, sign * tonumber(s) end
  return sign * tonumber(string.sub(s, 1, n - 9)), sign * tonumber(string.sub(s, n - 8))
end

-- exact spent + reserved + amount > limit for int64 strings
local function over(spent, reserved, amount, limit)
  local h1, l1 = halves(spent)
  local h2, l2 = halves(reserved)
  local h3, l3 = halves(amount)
  local h4, l4 = halves(limit)
  local lo = l1 + l2 + l3 - l4
  local carry = math.floor(lo / 1e9)
  local hi = h1 + h2 + h3 - h4 + carry
  lo = lo - carry * 1e9
  return hi > 0 or (hi == 0 and lo > 0)
end

local function load_reservation(key)
  local fields = redis.call('HGETALL', key)
  if #fields == 0 then return nil end
  local r = {}
  for i = 1, #fields, 2 do r[fields[i]] = fields[i + 1] end
  return r
end

-- give back the reservation on each of its counters still alive; with actual, charge it and
-- return the spend after, per counter (counters gone meanwhile are skipped, as in LocalCounters)
local function finish(r, actual)
  local back = negate(r.a)
  local out = {}
  for i = 1, tonumber(r.n) do
    local k = r[tostring(i)]
    if redis.call('EXISTS', k) == 1 then
      redis.call('HINCRBY', k, 'r', back)
      if actual then
        redis.call('HINCRBY', k, 's', actual)
        out[#out + 1] = redis.call('HGET', k, 's')
      end
    end
  end
  return out
end
"""

# KEYS: counter keys..., reservation key, expiry zset.
# ARGV: amount, reservation ttl_s, reservation id, then limit, enforce (0/1), ttl_s per counter.
# Returns {status, indexes, spent, reserved}: 0 ok, 1 missing (indexes), 2 blocked (indexes).
_RESERVE = (
    _PRELUDE
    + """
local n = #KEYS - 2
local amount, ttl = ARGV[1], tonumber(ARGV[2])
local missing, blocked, spent, reserved = {}, {}, {}, {}
for i = 1, n do
  local v = redis.call('HMGET', KEYS[i], 's', 'r')
  if not v[1] then
    missing[#missing + 1] = i - 1
  else
    spent[i], reserved[i] = v[1], v[2]
    local base = 3 + (i - 1) * 3
    if ARGV[base + 2] == '1' and over(v[1], v[2], amount, ARGV[base + 1]) then
      blocked[#blocked + 1] = i - 1
    end
  end
end
if #missing > 0 then return {1, missing, {}, {}} end
if #blocked > 0 then return {2, blocked, spent, reserved} end
local rkey = KEYS[n + 1]
local fields = {'a', amount, 'n', n}
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'r', amount)
  fields[#fields + 1] = tostring(i)
  fields[#fields + 1] = KEYS[i]
  -- a counter with money in flight must outlive the reservation, and its period
  local want = math.max(tonumber(ARGV[3 + (i - 1) * 3 + 3]), ttl)
  if redis.call('TTL', KEYS[i]) < want then redis.call('EXPIRE', KEYS[i], want) end
end
for i = 1, n do  -- read after all increments: a counter named twice shows both
  reserved[i] = redis.call('HGET', KEYS[i], 'r')
end
redis.call('DEL', rkey)
redis.call('HSET', rkey, unpack(fields))
redis.call('ZADD', KEYS[n + 2], now_ms() + ttl * 1000, ARGV[3])
return {0, {}, spent, reserved}
"""
)

# KEYS: counter. ARGV: spent, ttl_s. First writer wins.
_SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 's', ARGV[1], 'r', '0')
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: reservation key, expiry zset. ARGV: reservation id, actual ('' to release).
_FINISH = (
    _PRELUDE
    + """
local r = load_reservation(KEYS[1])
if not r then return {} end
local actual = ARGV[2]
if actual == '' then actual = false end
local out = finish(r, actual)
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return out
"""
)

# KEYS: expiry zset. ARGV: prefix, batch. Atomic, so concurrent sweeps release each id once.
_EXPIRE = (
    _PRELUDE
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[2]))
local released = 0
for _, id in ipairs(ids) do
  local rkey = ARGV[1] .. 'r:' .. id
  local r = load_reservation(rkey)
  if r then
    finish(r, false)
    redis.call('DEL', rkey)
    released = released + 1
  end
  redis.call('ZREM', KEYS[1], id)
end
return {released, #ids}
"""
)

_RATE_PRELUDE = (
    _PRELUDE
    + """
-- drop token entries older than the window and keep the running sum in step
local function trim_tokens(tkey, skey, cutoff)
  local old = redis.call('ZRANGEBYSCORE', tkey, '-inf', cutoff)
  if #old > 0 then
    local gone = 0
    for _, m in ipairs(old) do gone = gone + tonumber(string.match(m, '(-?%d+)$')) end
    redis.call('ZREMRANGEBYSCORE', tkey, '-inf', cutoff)
    redis.call('DECRBY', skey, gone)
  end
  if redis.call('ZCARD', tkey) == 0 then redis.call('DEL', skey) end
end

local function retry_after(zkey, now)
  local first = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES')
  if #first == 0 then return 60 end
  return math.floor((tonumber(first[2]) + 60000 - now) / 1000) + 1
end
"""
)

# KEYS: requests zset, tokens zset, token sum, in flight. ARGV: rpm, tpm, concurrency ('' = none),
# nonce, slot ttl_s. Returns {0 ok | 1 rpm | 2 tpm | 3 concurrency, retry_after_s}.
_RATE_ACQUIRE = (
    _RATE_PRELUDE
    + """
local now = now_ms()
local cutoff = now - 60000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
trim_tokens(KEYS[2], KEYS[3], cutoff)
local rpm, tpm, cc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if rpm and redis.call('ZCARD', KEYS[1]) >= rpm then return {1, retry_after(KEYS[1], now)} end
if tpm and tonumber(redis.call('GET', KEYS[3]) or '0') >= tpm then
  return {2, retry_after(KEYS[2], now)}
end
if cc and tonumber(redis.call('GET', KEYS[4]) or '0') >= cc then return {3, 1} end
redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[4])
redis.call('PEXPIRE', KEYS[1], 61000)
if cc then
  redis.call('INCR', KEYS[4])
  redis.call('EXPIRE', KEYS[4], ARGV[5])
end
return {0, 0}
"""
)

# KEYS: tokens zset, token sum, in flight. ARGV: tokens, release a slot (0/1), nonce.
_RATE_RELEASE = (
    _RATE_PRELUDE
    + """
local tokens = tonumber(ARGV[1])
if tokens ~= 0 then
  local now = now_ms()
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3] .. ':' .. ARGV[1])
  redis.call('INCRBY', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 61000)
  redis.call('PEXPIRE', KEYS[2], 61000)
end
if ARGV[2] == '1' and tonumber(redis.call('GET', KEYS[3]) or '0') > 0 then
  redis.call('DECR', KEYS[3])
end
return 0
"""
)


# KEYS: the sync marker, then counter keys. ARGV: marker ttl_s, then the amount per counter.
# Adds spend settled on a replica's local counters during an outage, once per marker: a sync
# retried after a lost reply is not counted twice. A counter gone meanwhile is skipped: it is
# seeded again from the ledger, which holds that spend.
_ADD_SPENT = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('HINCRBY', KEYS[i], 's', ARGV[i]) end
end
return 1
"""
SYNC_MARKER_TTL_S = 86_400


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


class RedisCounters:
    """Counters in Redis, shared by every replica that uses the same URL and prefix."""

    def __init__(
        self,
        url: str,
        prefix: str = DEFAULT_PREFIX,
        *,
        slot_ttl_s: int = SLOT_TTL_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._prefix = prefix
        self._slot_ttl_s = slot_ttl_s
        # a blocking pool: past max_connections calls wait for a connection instead of failing
        # (the default pool raises "Too many connections" at 100 in flight)
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=POOL_WAIT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
            decode_responses=True,
        )
        self._client: aioredis.Redis = aioredis.Redis.from_pool(pool)  # owns the pool: aclose closes it
        # register_script only hashes the text; EVALSHA loads it on first use (NOSCRIPT fallback)
        self._reserve = self._client.register_script(_RESERVE)
        self._seed = self._client.register_script(_SEED)
        self._finish = self._client.register_script(_FINISH)
        self._expire = self._client.register_script(_EXPIRE)
        self._rate_acquire = self._client.register_script(_RATE_ACQUIRE)
        self._rate_release = self._client.register_script(_RATE_RELEASE)
        self._add_spent = self._client.register_script(_ADD_SPENT)

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX) -> RedisCounters:
        return cls(url, prefix)

    @classmethod
    async def connect(cls, url: str, prefix: str = DEFAULT_PREFIX) -> RedisCounters:
        """Create and ping; closes the pool again if Redis cannot be reached."""
        counters = cls(url, prefix)
        try:
            await counters.ping()
        except BaseException:
            await counters.close()
            raise
        return counters

    @property
    def prefix(self) -> str:
        return self._prefix

    async def ping(self) -> None:
        await self._client.ping()

    async def reserve(
        self, reservation_id: str, charges: list[Charge], amount: int, ttl_s: int
    ) -> ReserveResult:
        keys = [self._counter_key(c.counter) for c in charges] + self._reservation_keys(reservation_id)
        args: list[str | int] = [str(amount), ttl_s, reservation_id]
        for c in charges:
            args += [str(c.limit), 1 if c.enforce else 0, c.ttl_s]
        status, indexes, spent, reserved = await self._reserve(keys=keys, args=args)
        if status == 1:
            return ReserveResult(ok=False, missing=[charges[i].counter for i in indexes])
        return ReserveResult(
            ok=status == 0,
            blocked=[int(i) for i in indexes],
            spent=[int(v) for v in spent],
            reserved=[int(v) for v in reserved],
        )

    async def seed(self, counter: str, spent: int, ttl_s: int) -> None:
        await self._seed(keys=[self._counter_key(counter)], args=[str(spent), ttl_s])

    async def add_spent(self, sync_id: str, amounts: dict[str, int]) -> bool:
        """Add settled spend to counters, once per `sync_id`; False if that id was already applied."""
        keys = [f"{self._prefix}sync:{sync_id}"] + [self._counter_key(name) for name in amounts]
        args: list[str | int] = [SYNC_MARKER_TTL_S, *(str(v) for v in amounts.values())]
        return bool(await self._add_spent(keys=keys, args=args))

    async def settle(self, reservation_id: str, actual: int) -> list[int]:
        keys = self._reservation_keys(reservation_id)
        out = await self._finish(keys=keys, args=[reservation_id, str(actual)])
        return [int(v) for v in out]

    async def release(self, reservation_id: str) -> None:
        await self._finish(keys=self._reservation_keys(reservation_id), args=[reservation_id, ""])

    async def expire(self) -> int:
        total = 0
        while True:
            released, seen = await self._expire(keys=[self._expiry_key()], args=[self._prefix, SWEEP_BATCH])
            total += int(released)
            if int(seen) < SWEEP_BATCH:
                return total

    async def rate_acquire(
        self, key_id: str, rpm: int | None, tpm: int | None, concurrency: int | None
    ) -> RateResult:
        keys = [self._rate_key(kind, key_id) for kind in ("rq", "rt", "rs", "rc")]
        nonce = secrets.token_hex(6)
        args: list[str | int] = [_opt(rpm), _opt(tpm), _opt(concurrency), nonce, self._slot_ttl_s]
        code, retry = await self._rate_acquire(keys=keys, args=args)
        if code == 0:
            return RateResult(True)
        reason = {1: f"{rpm} requests per minute", 2: f"{tpm} tokens per minute"}.get(
            int(code), f"{concurrency} concurrent requests"
        )
        return RateResult(False, reason, max(1, int(retry)))

    async def rate_release(self, key_id: str, tokens: int, concurrency: bool) -> None:
        keys = [self._rate_key(kind, key_id) for kind in ("rt", "rs", "rc")]
        await self._rate_release(keys=keys, args=[str(tokens), 1 if concurrency else 0, secrets.token_hex(6)])

    async def snapshot(self, counters: list[str]) -> list[tuple[int, int] | None]:
        if not counters:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for name in counters:
                pipe.hmget(self._counter_key(name), "s", "r")
            replies = await pipe.execute()
        return [None if s is None else (int(s), int(r or 0)) for s, r in replies]

    async def reservations_in_flight(self) -> int:
        return int(await self._client.zcard(self._expiry_key()))

    async def close(self) -> None:
        await self._client.aclose()

    def _counter_key(self, counter: str) -> str:
        return f"{self._prefix}c:{counter}"

    def _reservation_keys(self, reservation_id: str) -> list[str]:
        return [f"{self._prefix}r:{reservation_id}", self._expiry_key()]

    def _expiry_key(self) -> str:
        return f"{self._prefix}expiry"

    def _rate_key(self, kind: str, key_id: str) -> str:
        return f"{self._prefix}{kind}:{key_id}"
