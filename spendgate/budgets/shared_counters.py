"""Budget counters and rate limits shared by the gateway processes of one host, without Redis.

`spendgate serve --workers N` runs N processes; with `LocalCounters` each would enforce a
budget on its own, so N workers could spend N times it. `SharedCounters` keeps the counters in
one LMDB file (`SPENDGATE_COUNTERS_DIR`) that every process maps into memory: a reserve is one
LMDB write transaction (check every counter, then charge them all), and LMDB lets one writer in
at a time across processes (a robust process-shared mutex: a worker killed mid-transaction
leaves nothing half-done or locked), so no two workers can both take the last room in a budget.

Chosen by measured reserve latency (bench/counters_bench.py; docs/budgets.md): a reserve and a
settle on three counters take a few microseconds each, against tens for a SQLite WAL file (with
millisecond waits when processes contend for its lock) and a round trip of ~55 us to a counter
process over a Unix socket. The file is opened without fsync: the counters are a cache of the
ledger plus the reservations in flight, in memory pages the kernel writes back when it likes, so
a transaction never waits on the disk and is safe on the event loop.

Same semantics as `LocalCounters` (and `RedisCounters`): a missing counter is reported so the
caller seeds it from the ledger; times are wall-clock seconds, which all processes share. The
file outlives restarts as Redis does; reservations orphaned by a crash are released by `expire()`
after their TTL, and the in-flight count of a key lapses `SLOT_TTL_S` after its last request.
"""

from __future__ import annotations

import struct
import time
from array import array
from pathlib import Path

import lmdb
import orjson

from spendgate.budgets.counters import Charge, RateResult, ReserveResult

MAP_BYTES = 1 << 30  # address space, not memory: the file grows (sparsely) as it fills
SLOT_TTL_S = 900  # as RedisCounters: a crashed worker's concurrency slots come back
_COUNTER = struct.Struct("<qqd")  # spent, reserved (nanos), expires (epoch s)
_SLOTS = struct.Struct("<qd")  # in flight, last acquired (epoch s)
_WINDOW_S = 60.0


class SharedCounters:
    """Counters in an LMDB file, shared by every process that opens the same directory."""

    def __init__(self, directory: Path, map_bytes: int = MAP_BYTES) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._env = lmdb.open(
            str(directory),
            map_size=map_bytes,
            max_dbs=4,
            sync=False,  # no fsync: see the module docstring
            metasync=False,
            writemap=True,
            map_async=True,
        )
        self._counters = self._env.open_db(b"counters")
        self._reservations = self._env.open_db(b"reservations")
        self._rates = self._env.open_db(b"rates")

    # --- budgets ---
    async def reserve(
        self, reservation_id: str, charges: list[Charge], amount: int, ttl_s: int
    ) -> ReserveResult:
        now = time.time()
        with self._env.begin(write=True) as txn:
            found: dict[bytes, list[float]] = {}  # spent, reserved, expires
            missing = []
            for c in charges:
                name = c.counter.encode()
                if name in found:
                    continue
                value = self._live(txn, name, now)
                if value is None:
                    missing.append(c.counter)
                else:
                    found[name] = list(value)
            if missing:
                return ReserveResult(ok=False, missing=missing)
            names = [c.counter.encode() for c in charges]
            blocked = [
                i
                for i, (c, name) in enumerate(zip(charges, names, strict=True))
                if c.enforce and found[name][0] + found[name][1] + amount > c.limit
            ]
            if blocked:
                return ReserveResult(
                    ok=False,
                    blocked=blocked,
                    spent=[int(found[n][0]) for n in names],
                    reserved=[int(found[n][1]) for n in names],
                )
            for name in names:  # a counter named twice is charged twice, as in LocalCounters
                found[name][1] += amount
            for name, (spent, reserved, expires) in found.items():
                txn.put(name, _COUNTER.pack(int(spent), int(reserved), expires), db=self._counters)
            record = orjson.dumps({"c": [c.counter for c in charges], "a": amount, "e": now + ttl_s})
            txn.put(reservation_id.encode(), record, db=self._reservations)
            return ReserveResult(
                ok=True,
                spent=[int(found[n][0]) for n in names],
                reserved=[int(found[n][1]) for n in names],
            )

    async def seed(self, counter: str, spent: int, ttl_s: int) -> None:
        now = time.time()
        with self._env.begin(write=True) as txn:
            name = counter.encode()
            if self._live(txn, name, now) is None:
                txn.put(name, _COUNTER.pack(spent, 0, now + ttl_s), db=self._counters)

    async def settle(self, reservation_id: str, actual: int) -> list[int]:
        with self._env.begin(write=True) as txn:
            return self._finish(txn, reservation_id.encode(), actual)

    async def release(self, reservation_id: str) -> None:
        with self._env.begin(write=True) as txn:
            self._finish(txn, reservation_id.encode(), None)

    async def expire(self) -> int:
        now = time.time()
        with self._env.begin(write=True) as txn:
            stale = [
                key
                for key, record in txn.cursor(db=self._reservations)
                if orjson.loads(record)["e"] <= now
            ]
            for key in stale:
                self._finish(txn, key, None)
            gone = []
            for name, raw in txn.cursor(db=self._counters):
                _, reserved, expires = _COUNTER.unpack(raw)
                if expires <= now and reserved <= 0:
                    gone.append(name)
            for name in gone:
                txn.delete(name, db=self._counters)
            return len(stale)

    async def snapshot(self, counters: list[str]) -> list[tuple[int, int] | None]:
        now = time.time()
        out: list[tuple[int, int] | None] = []
        with self._env.begin() as txn:
            for counter in counters:
                raw = txn.get(counter.encode(), db=self._counters)
                if raw is None:
                    out.append(None)
                    continue
                spent, reserved, expires = _COUNTER.unpack(raw)
                out.append(None if expires <= now and reserved <= 0 else (spent, reserved))
        return out

    async def reservations_in_flight(self) -> int:
        with self._env.begin() as txn:
            return int(txn.stat(self._reservations)["entries"])

    # --- rate limits: the same sliding 60 s windows as LocalCounters ---
    async def rate_acquire(
        self, key_id: str, rpm: int | None, tpm: int | None, concurrency: int | None
    ) -> RateResult:
        now = time.time()
        cutoff = now - _WINDOW_S
        rq, rt, rc = (f"{kind}:{key_id}".encode() for kind in ("rq", "rt", "rc"))
        with self._env.begin(write=True) as txn:
            requests = _trimmed(txn.get(rq, db=self._rates), cutoff, 1)
            if rpm is not None and len(requests) >= rpm:
                oldest = requests[0] if requests else now
                return RateResult(False, f"{rpm} requests per minute", int(oldest + _WINDOW_S - now) + 1)
            if tpm is not None:
                tokens = _trimmed(txn.get(rt, db=self._rates), cutoff, 2)
                if sum(tokens[1::2]) >= tpm:
                    oldest = tokens[0] if tokens else now
                    return RateResult(False, f"{tpm} tokens per minute", int(oldest + _WINDOW_S - now) + 1)
            if concurrency is not None:
                in_flight = self._slots(txn, rc, now)
                if in_flight >= concurrency:
                    return RateResult(False, f"{concurrency} concurrent requests", 1)
                txn.put(rc, _SLOTS.pack(in_flight + 1, now), db=self._rates)
            requests.append(now)
            txn.put(rq, requests.tobytes(), db=self._rates)
            return RateResult(True)

    async def rate_release(self, key_id: str, tokens: int, concurrency: bool) -> None:
        now = time.time()
        rt, rc = (f"{kind}:{key_id}".encode() for kind in ("rt", "rc"))
        with self._env.begin(write=True) as txn:
            if tokens:
                window = _trimmed(txn.get(rt, db=self._rates), now - _WINDOW_S, 2)
                window.extend((now, float(tokens)))
                txn.put(rt, window.tobytes(), db=self._rates)
            if concurrency:
                in_flight = self._slots(txn, rc, now)
                if in_flight > 0:
                    raw = txn.get(rc, db=self._rates)
                    last = _SLOTS.unpack(raw)[1] if raw is not None else now
                    txn.put(rc, _SLOTS.pack(in_flight - 1, last), db=self._rates)

    async def close(self) -> None:
        self._env.close()

    # --- helpers (inside a write transaction) ---
    def _live(self, txn: lmdb.Transaction, name: bytes, now: float) -> tuple[int, int, float] | None:
        """(spent, reserved, expires) of a counter; one past its time with nothing in flight is gone."""
        raw = txn.get(name, db=self._counters)
        if raw is None:
            return None
        spent, reserved, expires = _COUNTER.unpack(raw)
        if expires <= now and reserved <= 0:
            txn.delete(name, db=self._counters)
            return None
        return spent, reserved, expires

    def _finish(self, txn: lmdb.Transaction, key: bytes, actual: int | None) -> list[int]:
        """Give a reservation back on each of its counters still alive; with `actual`, charge it
        and return the spend after, per counter."""
        raw = txn.pop(key, db=self._reservations)
        if raw is None:
            return []
        record = orjson.loads(raw)
        amount = int(record["a"])
        out = []
        for counter in record["c"]:
            name = counter.encode()
            value = txn.get(name, db=self._counters)
            if value is None:
                continue
            spent, reserved, expires = _COUNTER.unpack(value)
            reserved -= amount
            if actual is not None:
                spent += actual
                out.append(spent)
            txn.put(name, _COUNTER.pack(spent, reserved, expires), db=self._counters)
        return out

    def _slots(self, txn: lmdb.Transaction, key: bytes, now: float) -> int:
        raw = txn.get(key, db=self._rates)
        if raw is None:
            return 0
        in_flight, last = _SLOTS.unpack(raw)
        return 0 if last + SLOT_TTL_S <= now else int(in_flight)


def _trimmed(raw: bytes | None, cutoff: float, stride: int) -> array[float]:
    """A window of doubles (`stride` per entry, time first) without the entries older than `cutoff`."""
    window: array[float] = array("d")
    if raw is not None:
        window.frombytes(raw)
        drop = 0
        while drop < len(window) and window[drop] <= cutoff:
            drop += stride
        if drop:
            del window[:drop]
    return window
