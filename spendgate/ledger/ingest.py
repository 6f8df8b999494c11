"""Ledger ingestion in a process of its own: the serving process only appends to its journal.

With SPENDGATE_LEDGER_INGEST_PROCESS=true, the rows a `spendgate serve` process journals are
landed in the database by a child process that tails the spool folder, rather than by a writer
thread. A thread shares the serving process's GIL: its Python work (row parameters, rollup
deltas, the duplicate check) and every hand-off of the GIL after a database statement come out of
the event loop's time (docs/benchmarks.md). In its own process that work runs beside the event
loop, and the request path keeps one `write(2)` per call; the price is reading each row back from
the journal.

Exactly once, whatever is killed when:
- the journal is the only copy the serving process keeps, as before: a row is in its segment
  before the call's last byte reaches the client;
- a segment's owner holds a lock on it while it may still append; once the lock can be taken
  (the owner moved on to its next segment, or died), the segment is complete, and the ingester
  keeps the lock while it lands the rest and deletes it;
- the ingester lands rows from where it got to; if it dies, the next one starts each segment from
  the beginning, and rows already in the ledger are skipped by request id (the rollups count only
  rows actually inserted), so nothing is counted twice;
- one ingester works on a spool folder at a time (a lock on `ingest.lock`): the others (one per
  worker of `--workers N`) wait and take over if it goes;
- an ingester whose parent died lands what it has, then exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import mmap
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spendgate.ledger.journal import decode_lines
from spendgate.ledger.quarantine import Landed, land_lines
from spendgate.store.ledger import LedgerStore

if TYPE_CHECKING:
    from spendgate.config import Settings

log = logging.getLogger(__name__)

LOCK_NAME = "ingest.lock"
_STANDBY_STOP_WAIT_S = 20.0  # a stopping standby waits this long for the active ingester to finish
_READ_BYTES = 1 << 20


@dataclass(slots=True)
class _Tail:
    """How far one journal segment has been landed."""

    fd: int
    offset: int = 0  # bytes landed (always at a line boundary)
    final: bool = False  # its owner let it go: nothing more will be appended


class Ingester:
    """Lands the rows of every journal segment in `directory`, from where it got to."""

    def __init__(self, store: LedgerStore, directory: Path, batch_size: int) -> None:
        self._store = store
        self._directory = directory
        self.batch_size = batch_size
        self._tails: dict[Path, _Tail] = {}
        self.rows_written = 0
        self.rows_quarantined = 0
        self.last_write_lag_s = 0.0

    def step(self) -> int:
        """One pass over the folder: land what is new; delete complete segments once landed.
        Returns the rows landed. Raises on a database outage (nothing is lost: the next pass
        starts again from the last landed line)."""
        landed = 0
        for path in sorted(self._directory.glob("journal-*.jsonl")):
            tail = self._tails.get(path)
            if tail is None:
                try:
                    tail = self._tails[path] = _Tail(os.open(path, os.O_RDONLY))
                except FileNotFoundError:
                    continue
            if not tail.final:
                try:
                    fcntl.flock(tail.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    tail.final = True  # read to the end below, after taking the lock
                except BlockingIOError:
                    pass  # its owner may still append
            landed += self._land_segment(path, tail)
            if tail.final:
                path.unlink(missing_ok=True)
                self._forget(path)
        for path in [p for p in self._tails if not p.exists()]:  # replayed by a starting process
            self._forget(path)
        return landed

    def close(self) -> None:
        for path in list(self._tails):
            self._forget(path)

    def _land_segment(self, path: Path, tail: _Tail) -> int:
        landed = 0
        while True:
            data = os.pread(tail.fd, _READ_BYTES, tail.offset)
            if not data:
                return landed
            end = data.rfind(b"\n") + 1
            if end == 0:
                if len(data) < _READ_BYTES and not tail.final:
                    return landed  # a line still being written
                end = len(data)  # a torn last line of a complete segment: decode_lines skips it
            lines = decode_lines(data[:end].splitlines(), path.name)
            for start in range(0, len(lines), self.batch_size):
                self._land(lines[start : start + self.batch_size], path.name)
            landed += len(lines)
            tail.offset += end

    def _land(self, lines: list[dict[str, Any]], name: str) -> None:
        if not lines:
            return
        result: Landed = land_lines(self._store, lines, name)
        self.rows_written += result.inserted
        self.rows_quarantined += result.quarantined
        with contextlib.suppress(KeyError, AttributeError, ValueError):  # too odd a line to date
            self.last_write_lag_s = time.time() - _epoch(lines[0]["ended_at"])

    def _forget(self, path: Path) -> None:
        tail = self._tails.pop(path)
        os.close(tail.fd)


def _epoch(iso_utc: Any) -> float:
    return datetime.fromisoformat(iso_utc.replace("Z", "+00:00")).timestamp()


# --- the child process -------------------------------------------------------------------------

# The figures the ingester shares with the process that started it (for /metrics and /healthz):
# doubles in a memfd both map, written by the child only.
ROWS_WRITTEN, ROWS_QUARANTINED, LAG_S, STALL_SINCE, CAUGHT_UP_AT, ACTIVE, STOP = range(7)
_FIGURES = struct.Struct("<7d")  # STOP is the one slot the parent writes


class IngestProcess:
    """The child process that lands this spool folder's journals (started by `spendgate serve`).

    A plain `python -m spendgate.ledger.ingest` rather than multiprocessing: it imports only the
    store (about 19 MB; unpickling Settings would pull in pydantic, and spawn adds a resource
    tracker process), and it reads its configuration from a pipe, so no database URL shows in
    the process list."""

    def __init__(self, settings: Settings) -> None:
        self._config = {
            "database_url": settings.database_url,
            "spool": str(settings.resolved_spool_dir()),
            "batch_size": settings.ledger_batch_size,
            "interval_s": settings.ledger_flush_interval_s,
            "log_level": settings.log_level,
        }
        self._fd = os.memfd_create("spendgate-ingest-figures")
        os.ftruncate(self._fd, _FIGURES.size)
        self._figures = mmap.mmap(self._fd, _FIGURES.size)
        self._process: subprocess.Popen[bytes] | None = None

    def figure(self, slot: int) -> float:
        return float(_FIGURES.unpack_from(self._figures)[slot])

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "spendgate.ledger.ingest", str(self._fd)],
            stdin=subprocess.PIPE,
            pass_fds=(self._fd,),
        )
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({**self._config, "parent": os.getpid()}).encode())
        self._process.stdin.close()

    def stop(self, timeout: float = 30.0) -> None:
        """Land what the journals hold, then end (after the serving side closed its journal)."""
        if self._process is None:
            return
        # Through the shared figures, not a signal: a child still starting up would die of it.
        struct.pack_into("<d", self._figures, STOP * 8, 1.0)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("the ledger ingester did not finish in %.0fs; its rows stay in the journal", timeout)
            self._process.kill()
            self._process.wait(5)
        self._figures.close()
        os.close(self._fd)

    def caught_up_after(self, moment: float) -> bool:
        return self.figure(CAUGHT_UP_AT) > moment

    def stall_s(self) -> float:
        since = self.figure(STALL_SINCE)
        return 0.0 if not since else max(0.0, time.time() - since)


class _Shared:
    """The child's side of the figures."""

    def __init__(self, fd: int) -> None:
        self._map = mmap.mmap(fd, _FIGURES.size)

    def __setitem__(self, slot: int, value: float) -> None:
        struct.pack_into("<d", self._map, slot * 8, value)

    def __getitem__(self, slot: int) -> float:
        return float(struct.unpack_from("<d", self._map, slot * 8)[0])


def main() -> None:
    """`python -m spendgate.ledger.ingest FD` with its configuration on stdin: wait to be the
    spool folder's one ingester, then land until told to stop (the STOP figure, or SIGTERM), or
    until the parent is gone, with a last pass at the end."""
    from spendgate.store import open_store

    config = json.loads(sys.stdin.read())
    figures = _Shared(int(sys.argv[1]))
    stopping = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    logging.basicConfig(
        level=str(config["log_level"]).upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    directory = Path(config["spool"])
    directory.mkdir(parents=True, exist_ok=True)
    interval = float(config["interval_s"])

    def done() -> bool:
        return stopping or bool(figures[STOP]) or os.getppid() != config["parent"]

    lock = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        give_up: float | None = None
        while True:  # standby until no other ingester works on this folder
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if os.getppid() != config["parent"]:
                    return
                if stopping or figures[STOP]:
                    # Our gateway is stopping and its last segment must still be landed: the
                    # active ingester (likely one whose gateway died) is finishing, so wait a little.
                    give_up = give_up or time.monotonic() + _STANDBY_STOP_WAIT_S
                    if time.monotonic() > give_up:
                        return  # left in the journal: the next start replays it
                time.sleep(0.05 if give_up else interval)
        figures[ACTIVE] = 1
        store = open_store(config["database_url"])
        ingester = Ingester(store, directory, int(config["batch_size"]))
        try:
            _loop(ingester, interval, figures, done)
        finally:
            ingester.close()
            store.close()
    finally:
        os.close(lock)


def _loop(ingester: Ingester, interval_s: float, figures: _Shared, done: Callable[[], bool]) -> None:
    delay = 0.1
    while True:
        last = done()  # read before the pass: rows journaled before "stop" are in this pass
        started = time.time()
        try:
            landed = ingester.step()
        except Exception:  # an outage: the rows stay in the journal, the next pass resumes
            log.exception("ledger write failed; retrying in %.1fs", delay)
            if not figures[STALL_SINCE]:
                figures[STALL_SINCE] = started
            if last:
                return  # shutting down: left in the journal for the next start
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        delay = 0.1
        figures[ROWS_WRITTEN] = ingester.rows_written
        figures[ROWS_QUARANTINED] = ingester.rows_quarantined
        figures[LAG_S] = ingester.last_write_lag_s
        figures[STALL_SINCE] = 0.0
        if not landed:
            figures[CAUGHT_UP_AT] = started
        if last:
            return
        if landed < ingester.batch_size:
            # Caught up, or nearly: let rows gather for a pass of a batch or so. Without the pause,
            # under steady load passes ran back to back, each landing the few rows journaled
            # during the one before: a transaction, a rollup upsert per key and a folder scan
            # every few rows, and a child always awake beside the event loop.
            time.sleep(interval_s)


def another_is_active(directory: Path) -> bool:
    """True while an ingester (of another gateway process) works on this spool folder."""
    path = directory / LOCK_NAME
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the lock if it was taken
    return False


if __name__ == "__main__":
    main()
