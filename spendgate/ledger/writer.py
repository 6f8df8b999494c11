"""One writer thread batches ledger rows into the store; the request path only enqueues."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter

from spendgate.budgets.model import BudgetEvent
from spendgate.ledger import ingest
from spendgate.ledger.ingest import IngestProcess
from spendgate.ledger.journal import Journal, Segment
from spendgate.ledger.quarantine import land
from spendgate.models import LedgerRow
from spendgate.store.ledger import LedgerStore

log = logging.getLogger(__name__)

_STOP = object()


class LedgerWriter:
    def __init__(
        self,
        store: LedgerStore,
        journal: Journal,
        batch_size: int,
        flush_interval_s: float,
        ingest: IngestProcess | None = None,
    ) -> None:
        """With `ingest`, rows are only journaled here and that process lands them (`spendgate
        serve`: see ingest.py); the thread then writes budget events alone."""
        self._store = store
        self._journal = journal
        self._ingest = ingest
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._queue: queue.SimpleQueue[tuple[LedgerRow, Segment] | BudgetEvent | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="spendgate-ledger-writer", daemon=True)
        self._idle = threading.Event()
        self._idle.set()
        self._stopping = threading.Event()
        self._rows_written = 0
        self._rows_quarantined = 0  # this process's, replay at start-up included
        self._last_write_lag_s = 0.0
        # monotonic time the oldest row not yet in the database was taken by the writer, or None
        self._pending_since: float | None = None

    def start(self) -> None:
        self._thread.start()
        if self._ingest is not None:
            self._ingest.start()

    @property
    def rows_written(self) -> int:
        extra = int(self._ingest.figure(ingest.ROWS_WRITTEN)) if self._ingest is not None else 0
        return self._rows_written + extra

    @property
    def rows_quarantined(self) -> int:
        extra = int(self._ingest.figure(ingest.ROWS_QUARANTINED)) if self._ingest is not None else 0
        return self._rows_quarantined + extra

    def add_quarantined(self, count: int) -> None:
        """Rows quarantined outside the writer (the journal replay at start-up)."""
        self._rows_quarantined += count

    @property
    def last_write_lag_s(self) -> float:
        if self._ingest is not None:
            return self._ingest.figure(ingest.LAG_S)
        return self._last_write_lag_s

    def record(self, row: LedgerRow) -> None:
        """Journal the row (crash-safe at once), then hand it to the writer thread (or leave it
        to the ingest process)."""
        segment = self._journal.append(row)
        if self._ingest is not None:
            return
        if self._idle.is_set():  # clear() takes a lock: only when the writer had gone idle
            self._idle.clear()
        self._queue.put((row, segment))

    def record_event(self, event: BudgetEvent) -> None:
        """A budget tier crossed: written by the same thread, off the request path."""
        self._idle.clear()
        self._queue.put(event)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def stall_s(self) -> float:
        """How long the oldest row the writer holds has waited for the database (0: none held)."""
        since = self._pending_since
        own = 0.0 if since is None else max(0.0, time.monotonic() - since)
        return max(own, self._ingest.stall_s()) if self._ingest is not None else own

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until everything recorded so far is in the database (tests, shutdown)."""
        asked = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._idle.wait(0.05):
                continue  # the writer holds rows: that wait was the pause
            if self._queue.empty() and (self._ingest is None or self._ingest.caught_up_after(asked)):
                return True
            # Idle, yet rows are queued (recorded as it went idle) or the ingest process is behind:
            # pause rather than spin, which kept the GIL from the very thread being waited for.
            time.sleep(0.005)
        return False

    def stop(self, timeout: float = 30.0) -> None:
        # Rows the database cannot take now stay in the journal: the next start replays them.
        self._stopping.set()
        self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._journal.close()  # with an ingest process: releases the segments, which it then lands
        if self._ingest is not None:
            self._ingest.stop(timeout)

    def _run(self) -> None:
        stopping = full = False
        while not stopping:
            batch: list[tuple[LedgerRow, Segment]] = []
            events: list[BudgetEvent] = []
            item = self._queue.get()
            self._pending_since = time.monotonic()
            if item is not _STOP and not full:
                # Let rows gather for one interval, then take them all: the thread wakes once per
                # batch rather than once per call (each wake-up costs the event loop the GIL).
                # After a full batch more rows are already waiting: no pause, or past
                # batch_size / interval rows a second the queue would only grow.
                time.sleep(self._interval)
            while True:
                if item is _STOP:
                    stopping = True
                    break
                if isinstance(item, BudgetEvent):
                    events.append(item)
                else:
                    assert isinstance(item, tuple)
                    batch.append(item)
                if len(batch) >= self._batch_size:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            full = len(batch) >= self._batch_size
            if batch:
                self._write(batch)
            if events:
                self._write_events(events)
            self._pending_since = None
            if self._queue.empty():
                self._idle.set()

    def _write_events(self, events: list[BudgetEvent]) -> None:
        try:
            self._store.insert_budget_events(events)
        except Exception:  # an event lost to an outage is logged; budgets keep being enforced
            log.exception("could not record %d budget tier events", len(events))

    def _write(self, batch: list[tuple[LedgerRow, Segment]]) -> None:
        rows = [row for row, _ in batch]
        delay = 0.1
        while True:
            try:
                landed = land(self._store, rows)  # a row refused for good is quarantined, not retried
                break
            except Exception:  # an outage: the rows are safe in the journal, keep trying
                log.exception("ledger write failed; retrying in %.1fs", delay)
                if self._stopping.wait(delay):
                    return  # shutting down: left uncommitted in the journal for the next start
                delay = min(delay * 2, 5.0)
        self._rows_written += landed.inserted
        self._rows_quarantined += landed.quarantined
        self._last_write_lag_s = time.time() - _epoch(rows[0].ended_at)
        for segment, count in Counter(segment for _, segment in batch).items():
            self._journal.mark_committed(segment, count)


def _epoch(iso_utc: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso_utc.replace("Z", "+00:00")).timestamp()
