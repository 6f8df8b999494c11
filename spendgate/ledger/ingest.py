"""Ledger ingestion in a process of its own: the serving process only appends to its journal.

Under `spendgate serve`, the rows a gateway process journals are landed in the database by a
child process that tails the spool folder, rather than by a writer thread. A thread shares the
serving process's GIL: its Python work (row parameters, rollup deltas, the duplicate check) and
every hand-off of the GIL after a database statement come out of the event loop's time, about
50 µs per call on a 2-core machine (docs/benchmarks.md). In its own process that work runs
beside the event loop, and the request path keeps one `write(2)` per call.

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

import fcntl
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.sharedctypes import Synchronized, SynchronizedArray
from pathlib import Path
from typing import TYPE_CHECKING

from spendgate.ledger.journal import parse_lines
from spendgate.ledger.quarantine import Landed, land_checked
from spendgate.models import LedgerRow
from spendgate.store.ledger import LedgerStore

if TYPE_CHECKING:
    from spendgate.config import Settings

log = logging.getLogger(__name__)

LOCK_NAME = "ingest.lock"
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
        self._batch_size = batch_size
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
                end = len(data)  # a torn last line of a complete segment: parse_lines skips it
            rows = parse_lines(data[:end].splitlines(), path.name)
            for start in range(0, len(rows), self._batch_size):
                self._land(rows[start : start + self._batch_size])
            landed += len(rows)
            tail.offset += end

    def _land(self, rows: list[LedgerRow]) -> None:
        if not rows:
            return
        result: Landed = land_checked(self._store, rows)
        self.rows_written += result.inserted
        self.rows_quarantined += result.quarantined
        self.last_write_lag_s = time.time() - _epoch(rows[0].ended_at)

    def _forget(self, path: Path) -> None:
        tail = self._tails.pop(path)
        os.close(tail.fd)


def _epoch(iso_utc: str) -> float:
    return datetime.fromisoformat(iso_utc.replace("Z", "+00:00")).timestamp()


# --- the child process -------------------------------------------------------------------------

# Slots of the figures the ingester shares with the process that started it (for /metrics and
# /healthz); doubles, written by the child only.
ROWS_WRITTEN, ROWS_QUARANTINED, LAG_S, STALL_SINCE, CAUGHT_UP_AT, ACTIVE = range(6)


class IngestProcess:
    """The child process that lands this spool folder's journals (started by `spendgate serve`)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._context = multiprocessing.get_context("spawn")  # a clean process: no event loop, no threads
        self.figures: SynchronizedArray[float] = self._context.Array("d", 6)
        self._stop: Synchronized[int] = self._context.Value("i", 0)
        self._process: multiprocessing.process.BaseProcess | None = None

    def start(self) -> None:
        self._process = self._context.Process(
            target=run_ingester,
            args=(self._settings, os.getpid(), self.figures, self._stop),
            name="spendgate-ledger-ingest",
            daemon=True,
        )
        self._process.start()

    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Land what the journals hold, then end (after the serving side closed its journal)."""
        self._stop.value = 1
        if self._process is None:
            return
        self._process.join(timeout)
        if self._process.is_alive():
            log.error("the ledger ingester did not finish in %.0fs; its rows stay in the journal", timeout)
            self._process.kill()
            self._process.join(5)

    def caught_up_after(self, moment: float) -> bool:
        return self.figures[CAUGHT_UP_AT] > moment


def run_ingester(
    settings: Settings, parent: int, figures: SynchronizedArray[float], stop: Synchronized[int]
) -> None:
    """The child's main: wait to be the spool folder's one ingester, then land until told to stop
    (or until the parent is gone), with a last pass at the end."""
    from spendgate.store import open_store

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    directory = settings.resolved_spool_dir()
    directory.mkdir(parents=True, exist_ok=True)

    def done() -> bool:
        return bool(stop.value) or os.getppid() != parent

    lock = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:  # standby until no other ingester works on this folder
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if done():
                    return
                time.sleep(settings.ledger_flush_interval_s)
        figures[ACTIVE] = 1
        store = open_store(settings.database_url)
        ingester = Ingester(store, directory, settings.ledger_batch_size)
        try:
            _loop(ingester, settings.ledger_flush_interval_s, figures, done)
        finally:
            ingester.close()
            store.close()
    finally:
        os.close(lock)


def _loop(
    ingester: Ingester, interval_s: float, figures: SynchronizedArray[float], done: Callable[[], bool]
) -> None:
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
        if not landed:
            time.sleep(interval_s)  # rows gather meanwhile: one pass (one transaction) per batch


def stall_s(figures: SynchronizedArray[float]) -> float:
    since = figures[STALL_SINCE]
    return 0.0 if not since else max(0.0, time.time() - since)


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
