"""Ledger ingestion from another process: every journaled row lands once, whatever stops when.

The Ingester is driven directly here (it is what the child process of `spendgate serve` runs);
tests/test_crash_safety.py and tests/test_workers.py drive it through `spendgate serve`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from spendgate.ledger.ingest import Ingester
from spendgate.ledger.journal import Journal
from spendgate.ledger.quarantine import row_problem
from spendgate.models import LEDGER_COLUMNS, LedgerRow
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


def misfit_lines(prefix: str) -> list[bytes]:
    """Journal lines of every shape a row can come back in: good ones (in column order, and in
    another order, as an older version wrote them), a value that does not fit in every column but
    the request id, a NUL the database refuses, and lines that are no row at all."""
    template = asdict(row(0))
    lines = []
    misfits: list[Any] = [None, True, 1.5, 2**64, -(2**64), "text", {"a": 1}, {"a": "b"}, [], 7, {}, "a\x00b"]
    for i, name in enumerate(LEDGER_COLUMNS[1:]):
        for j, value in enumerate(misfits):
            line = {**template, "request_id": f"{prefix}-{i}-{j}", name: value}
            lines.append(json.dumps(line).encode())  # json: orjson refuses an int past 64 bits
    good = {**template, "request_id": f"{prefix}-good", "tags": {"repo": "api", "pr": "7"}}
    lines.append(orjson.dumps(good))
    lines.append(orjson.dumps(dict(reversed({**good, "request_id": f"{prefix}-reversed"}.items()))))
    lines.append(orjson.dumps({**good, "request_id": f"{prefix}-stranger", "no_such_column": 1}))
    lines.append(orjson.dumps({k: v for k, v in good.items() if k != "provider"}))
    lines += [b"[1]", b"{torn", b"", b"null"]
    return lines


def expected_outcome(line: bytes, database_url: str) -> tuple[str, LedgerRow | None, str | None]:
    """What must become of a journal line, worked out the slow way, row by row: ("skipped", None,
    None) for no row at all, ("quarantined", row, reason) for a row that does not fit (or that
    PostgreSQL refuses: the NUL), ("landed", row, None) otherwise."""
    try:
        decoded = orjson.loads(line)
        row = LedgerRow.from_journal(decoded) if type(decoded) is dict else None
    except (orjson.JSONDecodeError, TypeError):
        row = None
    if row is None:
        return "skipped", None, None
    problem = row_problem(row)
    if problem is not None:
        return "quarantined", row, problem
    if database_url.startswith("postgres") and "\\u0000" in orjson.dumps(asdict(row)).decode():
        return "quarantined", row, None  # the database's own words
    return "landed", row, None


def test_lines_land_as_each_row_checked_alone_would(tmp_path: Path, database_url: str) -> None:
    """The ingest process lands a journal line in column order as its list of values, without a
    LedgerRow (`land_lines`). Every line of every shape must still end as the row check says:
    each value that does not fit, in every column, quarantined with the reason `row_problem`
    gives; the good rows landed whole, in whatever key order; no row at all skipped. On SQLite and
    on PostgreSQL, which also refuses a NUL (found by halving the batch)."""
    store = open_store(database_url)
    store.migrate()
    try:
        lines = misfit_lines("new")
        spool = tmp_path / "spool"
        spool.mkdir()
        (spool / "journal-1-1-000001.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        ingester = Ingester(store, spool, batch_size=50)
        ingester.step()
        ingester.close()
        assert not list(spool.glob("journal-*")), "a complete segment nobody holds is landed and deleted"

        expected = [expected_outcome(line, database_url) for line in lines]
        landed = {r["request_id"]: r for r in store.iter_ledger_rows()}
        kept = {q["request_id"]: q for q in store.quarantined_ledger_rows()}
        rows: dict[str, dict[str, LedgerRow]] = {"landed": {}, "quarantined": {}, "skipped": {}}
        for fate, row, _ in expected:
            if row is not None:
                rows[fate][row.request_id] = row
        assert landed == {request_id: asdict(row) for request_id, row in rows["landed"].items()}
        assert set(kept) == set(rows["quarantined"])
        for fate, row, reason in expected:
            if fate == "quarantined" and row is not None:
                held = kept[row.request_id]
                # the whole row, as the row path keeps it: the same text, booleans and all
                assert held["row_json"] == json.dumps(asdict(row), ensure_ascii=True, default=str)
                if reason is not None:
                    assert held["reason"] == reason
                else:
                    assert "0x00" in held["reason"] or "\\x00" in held["reason"], held["reason"]
        assert {"new-good", "new-reversed"} <= set(landed)
        assert "new-stranger" not in landed and "new-stranger" not in kept
        assert ingester.rows_written == len(landed)
        assert ingester.rows_quarantined == len(kept) > 100
        rollup = sum(r.cost_nanos for r in store.spend("team", None, None))
        assert rollup == sum(r["cost_nanos"] for r in landed.values())
    finally:
        store.close()
