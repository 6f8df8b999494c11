"""One writer thread batches ledger rows into the store; the request path only enqueues."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter

from spendgate.budgets.model import BudgetEvent
from spendgate.ledger.journal import Journal, Segment
from spendgate.models import LedgerRow
from spendgate.store.base import Store

log = logging.getLogger(__name__)

_STOP = object()


class LedgerWriter:
    def __init__(self, store: Store, journal: Journal, batch_size: int, flush_interval_s: float) -> None:
        self._store = store
        self._journal = journal
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._queue: queue.SimpleQueue[tuple[LedgerRow, Segment] | BudgetEvent | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="spendgate-ledger-writer", daemon=True)
        self._idle = threading.Event()
        self._idle.set()
        self.rows_written = 0
        self.last_write_lag_s = 0.0

    def start(self) -> None:
        self._thread.start()

    def record(self, row: LedgerRow) -> None:
        """Journal the row (crash-safe at once), then hand it to the writer thread."""
        segment = self._journal.append(row)
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

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until everything recorded so far is in the database (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and self._idle.wait(0.05) and self._queue.empty():
                return True
        return False

    def stop(self, timeout: float = 30.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._journal.close()

    def _run(self) -> None:
        stopping = full = False
        while not stopping:
            batch: list[tuple[LedgerRow, Segment]] = []
            events: list[BudgetEvent] = []
            item = self._queue.get()
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
                self._store.insert_ledger_rows(rows)
                break
            except Exception:  # the rows are safe in the journal: keep trying, never drop them
                log.exception("ledger write failed; retrying in %.1fs", delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.rows_written += len(rows)
        self.last_write_lag_s = time.time() - _epoch(rows[0].ended_at)
        for segment, count in Counter(segment for _, segment in batch).items():
            self._journal.mark_committed(segment, count)


def _epoch(iso_utc: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso_utc.replace("Z", "+00:00")).timestamp()
