"""Ledger ingestion from another process: every journaled row lands once, whatever stops when.

The Ingester is driven directly here (it is what the child process of `spendgate serve` runs);
tests/test_crash_safety.py and tests/test_workers.py drive it through `spendgate serve`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spendgate.ledger.ingest import Ingester
from spendgate.ledger.journal import Journal
from spendgate.models import LedgerRow
from spendgate.store import open_store
from spendgate.store.base import Store


def row(n: int, cost: int = 1000) -> LedgerRow:
    at = f"2026-11-29T10:00:{n % 60:02d}.000000Z"
    values: dict[str, Any] = {
        "provider": "anthropic", "endpoint": "/v1/messages", "status_code": 200, "status": "ok",
        "use_case": "chat", "team_id": "platform", "cost_nanos": cost,
    }
    return LedgerRow(request_id=f"req-{n:05d}", started_at=at, ended_at=at, **values)


def setup(tmp_path: Path, segment_bytes: int = 1 << 20) -> tuple[Store, Path, Journal]:
    """A fresh ledger, and a journal (as `spendgate serve` with the ingest process keeps it)."""
    store = open_store(f"sqlite:///{tmp_path}/ledger.db")
    store.migrate()
    spool = tmp_path / "spool"
    return store, spool, Journal(spool, segment_bytes, handoff=True)


def totals(store: Store) -> tuple[int, int]:
    """(ledger rows, cost in the daily rollup): a row counted twice would show in either."""
    rows = store.ledger_rows()
    rollup = sum(r.cost_nanos for r in store.spend("team", None, None))
    return len(rows), rollup


def test_rows_land_as_they_are_journaled_and_complete_segments_go(tmp_path: Path) -> None:
    store, spool, journal = setup(tmp_path, segment_bytes=4_000)  # a few rows per segment
    ingester = Ingester(store, spool, batch_size=7)
    for n in range(40):
        journal.append(row(n))
    assert ingester.step() == 40
    assert totals(store) == (40, 40_000)
    live = sorted(spool.glob("journal-*.jsonl"))
    assert len(live) == 1, live  # rotated segments were released by their owner, landed and deleted
    for n in range(40, 45):
        journal.append(row(n))
    assert ingester.step() == 5
    assert ingester.step() == 0
    journal.close()  # released: the ingester lands what is left and deletes it
    assert ingester.step() == 0
    assert not list(spool.glob("journal-*.jsonl"))
    assert totals(store) == (45, 45_000)
    ingester.close()
    store.close()


def test_a_new_ingester_after_a_crash_counts_nothing_twice(tmp_path: Path) -> None:
    store, spool, journal = setup(tmp_path)
    first = Ingester(store, spool, batch_size=10)
    for n in range(30):
        journal.append(row(n))
    assert first.step() == 30
    first.close()  # killed: what it landed is in the ledger, where it got to is lost
    for n in range(30, 50):
        journal.append(row(n))
    second = Ingester(store, spool, batch_size=10)
    assert second.step() == 50  # read from the start again; the first 30 are skipped by request id
    assert second.rows_written == 20
    assert totals(store) == (50, 50_000)
    second.close()
    store.close()


def test_a_torn_last_line_of_a_dead_process_is_skipped(tmp_path: Path) -> None:
    store, spool, journal = setup(tmp_path)
    for n in range(3):
        journal.append(row(n))
    path = journal.current.path
    with path.open("ab") as torn:
        torn.write(b'{"request_id": "req-99999", "prov')  # the process died mid-write
    ingester = Ingester(store, spool, batch_size=10)
    assert ingester.step() == 3  # the owner still holds it: the unfinished line waits
    journal.close()
    assert ingester.step() == 0
    assert totals(store) == (3, 3_000)
    assert not path.exists()
    ingester.close()
    store.close()
