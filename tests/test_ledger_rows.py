"""Ledger rows as the journal keeps them: every column, in the table's order, for answered and
streamed calls, and the same values the database gets (the journal is what a crash replays)."""

from __future__ import annotations

import re
from pathlib import Path

import anthropic
import orjson

from spendgate.models import LEDGER_COLUMNS, LedgerRow
from tests.conftest import RunningGateway

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def journal_lines(spool: Path) -> dict[str, dict[str, object]]:
    """request id -> the journaled row, as parsed from its line."""
    paths = sorted(spool.glob("journal-*.jsonl"))
    rows = [orjson.loads(line) for path in paths for line in path.read_bytes().splitlines() if line.strip()]
    return {str(row["request_id"]): row for row in rows}


def test_journal_lines_hold_every_column_in_order(gateway: RunningGateway, tmp_path: Path) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.key, max_retries=0)
    ask = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    answered = client.messages.with_raw_response.create(**ask)  # type: ignore[call-overload]
    with client.messages.with_streaming_response.create(stream=True, **ask) as streamed:  # type: ignore[call-overload]
        streamed.read()
    ids = [answered.headers["x-spendgate-request-id"], streamed.headers["x-spendgate-request-id"]]
    stored = {row["request_id"]: row for row in gateway.rows()}
    journaled = journal_lines(tmp_path / "spendgate.db.spool")
    for request_id, stream in zip(ids, (False, True), strict=True):
        line = journaled[request_id]
        assert list(line) == list(LEDGER_COLUMNS)  # the key order a dataclass's fields give
        assert LedgerRow(**line).as_dict() == line  # read back as ingest and recover_journals do
        assert line["streamed"] is stream and line["status"] == "ok" and line["output_tokens"]
        for name in ("started_at", "first_byte_at", "ended_at"):
            assert ISO.fullmatch(str(line[name])), line[name]
        assert line["started_at"] <= line["first_byte_at"] <= line["ended_at"]  # type: ignore[operator]
        row = stored[request_id]
        for name in ("started_at", "ended_at", "first_byte_at", "input_tokens", "output_tokens"):
            assert row[name] == line[name], name
        assert row["cost_nanos"] == line["cost_nanos"] > 0


def test_insert_parameters_follow_the_columns_however_the_row_was_built() -> None:
    from spendgate.store.sql_ledger import ledger_values

    row = LedgerRow(
        request_id="sg-1",
        provider="anthropic",
        endpoint="/v1/messages",
        started_at="2026-11-29T10:00:00.000000Z",
        ended_at="2026-11-29T10:00:01.000000Z",
        status_code=200,
        status="ok",
        use_case="code-review",
        tags={"repo": "r"},
        estimated=True,
        output_tokens=7,
    )
    expected = [getattr(row, name) for name in LEDGER_COLUMNS]
    expected[LEDGER_COLUMNS.index("tags")] = '{"repo":"r"}'
    expected[LEDGER_COLUMNS.index("estimated")] = 1
    expected[LEDGER_COLUMNS.index("streamed")] = 0
    assert ledger_values(row) == expected  # the __dict__ in field order, copied at once
    # A __dict__ in another order (or with more in it) is read field by field instead.
    shuffled = LedgerRow.__new__(LedgerRow)
    shuffled.__dict__ = dict(reversed(row.__dict__.items()))
    shuffled.__dict__["note"] = "not a column"
    assert ledger_values(shuffled) == expected
