"""Ledger rows as the journal keeps them: every column, in the table's order, for answered and
streamed calls, and the same values the database gets (the journal is what a crash replays)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import anthropic
import orjson
import pytest

from spendgate.admission import Admitted
from spendgate.attribution import Attribution
from spendgate.budgets.enforcer import Decision
from spendgate.forward import Attempts
from spendgate.meter import Measured
from spendgate.models import LEDGER_COLUMNS, LedgerRow, Principal
from spendgate.pricing import Cost, ModelPrice, Rate, Usage
from spendgate.providers.base import ClientRequest, Metered, RequestInfo
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


def _admitted(budget_note: str | None) -> Admitted:
    """An admitted call whose every field the row reads has a value of its own."""
    rates = (Rate(Decimal(1)), Rate(Decimal(2)), Rate(Decimal(3)), Rate(Decimal("0.1")), Rate(Decimal(5)))
    price = ModelPrice("price-ref", *rates)
    principal = Principal(
        "key-id", "key-name", "org-id", "team-id", "user-id", "cost-center", None, {}, None, team_name="team"
    )
    who = Attribution(
        "use-case", {"tag": "value"}, "session", "agent", "parent-agent", "client-request", "user-agent",
        "inferred:rule", "evidence",
    )  # fmt: skip
    request = ClientRequest("/v1/messages", "", {}, b"{}")
    info = RequestInfo("requested-model", False, 64)
    decision = Decision(reservation_id="r-1", notes=[budget_note] if budget_note else [])
    return Admitted(
        "request-id", 1_764_000_000.25, "anthropic", request, info, principal, who, "admitted-model", price,
        price, "route-rule", decision,
    )  # fmt: skip


def test_of_call_puts_each_value_in_its_column() -> None:
    """of_call builds the row positionally: every value must land under its own name."""
    call = _admitted("would_block:b")
    price = call.price
    attempts = Attempts(2, "upstream-model", price, "fallback-model", 1_764_000_000.5, "upstream-id")
    usage = Usage(11, 12, 13, 14, 15, 16, 17)
    metered = Metered(usage, "response-model", True, False, "error-type")
    measured = Measured(200, "stream_error", metered, True, 1_764_000_001.000001)
    cost = Cost(123, "cost-ref", "long_context")
    row = LedgerRow.of_call(call, attempts, measured, cost, 456, 1_764_000_002.5)
    assert row.as_dict() == {
        "request_id": "request-id",
        "provider": "anthropic",
        "endpoint": "/v1/messages",
        "started_at": "2025-11-24T16:00:00.250000Z",
        "ended_at": "2025-11-24T16:00:02.500000Z",
        "status_code": 200,
        "status": "stream_error",
        "use_case": "use-case",
        "first_byte_at": "2025-11-24T16:00:01.000001Z",
        "org_id": "org-id",
        "team_id": "team-id",
        "user_id": "user-id",
        "key_id": "key-id",
        "cost_center": "cost-center",
        "tags": {"tag": "value"},
        "session_id": "session",
        "agent_id": "agent",
        "parent_agent_id": "parent-agent",
        "client_request_id": "client-request",
        "requested_model": "requested-model",
        "upstream_model": "upstream-model",
        "response_model": "response-model",
        "input_tokens": 11,
        "cache_write_5m_tokens": 12,
        "cache_write_1h_tokens": 13,
        "cache_read_tokens": 14,
        "output_tokens": 15,
        "reasoning_tokens": 16,
        "web_search_requests": 17,
        "cost_nanos": 123,
        "price_ref": "price-ref",
        "pricing_tier": "long_context",
        "estimated": True,
        "streamed": True,
        "error_type": "error-type",
        "upstream_request_id": "upstream-id",
        "user_agent": "user-agent",
        "budget_note": "would_block:b",
        "route_rule": "route-rule",
        "counterfactual_cost_nanos": 456,
        "attempts": 2,
        "fallback_from": "fallback-model",
        "use_case_source": "inferred:rule",
        "use_case_evidence": "evidence",
    }
    assert list(row.__dict__) == list(LEDGER_COLUMNS)  # the journal line's key order


def test_of_call_of_a_call_never_sent() -> None:
    """No attempts (refused by a budget): admission's model and price, one attempt, no cost."""
    call = _admitted(None)
    measured = Measured(429, "budget_blocked", Metered(Usage(), error_type="budget_exceeded"), False)
    row = LedgerRow.of_call(call, None, measured, None, None, 1_764_000_000.75)
    values = row.as_dict()
    assert values["upstream_model"] == "admitted-model" and values["price_ref"] == "price-ref"
    assert values["attempts"] == 1 and values["upstream_request_id"] is values["fallback_from"] is None
    assert values["cost_nanos"] == 0 and values["pricing_tier"] is values["counterfactual_cost_nanos"] is None
    assert values["first_byte_at"] is None and values["budget_note"] is None
    assert values["ended_at"] == "2025-11-24T16:00:00.750000Z"


def test_journal_line_is_the_rows_fields_in_order(tmp_path: Path) -> None:
    """Journal.append writes the row's __dict__: the same bytes orjson gives the dataclass itself
    (its fields in order), for a row of_call built and for one built by LedgerRow's __init__."""
    from spendgate.ledger.journal import Journal, decode_lines

    call = _admitted("would_block:b")
    attempts = Attempts(2, "upstream-model", call.price, "fallback-model", 1_764_000_000.5, "upstream-id")
    model = "response-model\u00e9\"\\"  # escaped as JSON must
    metered = Metered(Usage(11, 12, 13, 14, 15, 16, 17), model, True, False, "error-type")
    measured = Measured(200, "stream_error", metered, True, 1_764_000_001.000001)
    cost = Cost(123, "ref", "long_context")
    built = LedgerRow.of_call(call, attempts, measured, cost, 456, 1_764_000_002.5)
    plain = LedgerRow(
        request_id="r-2", provider="openai", endpoint="/v1/chat/completions", started_at="a",
        ended_at="b", status_code=200, status="ok", use_case="u", tags={"k": "v\n"}, cost_nanos=2**62,
    )  # fmt: skip
    journal = Journal(tmp_path, 1 << 20)
    for row in (built, plain):
        journal.append(row)
    lines = journal.current.path.read_bytes().splitlines(keepends=True)
    assert lines == [orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in (built, plain)]
    assert list(orjson.loads(lines[0])) == list(LEDGER_COLUMNS)
    assert [LedgerRow.from_journal(line) for line in decode_lines(lines, "test")] == [built, plain]
    journal.close()


def test_a_journal_line_reads_back_as_the_same_row_whatever_its_shape() -> None:
    """LedgerRow.from_journal takes a line of every field in column order as the row's __dict__;
    a line from before a field existed, or in another order, goes through __init__ (defaults
    filled in, each value under its own name); a line with a field the row lacks is a torn line."""
    from spendgate.ledger.journal import decode_lines
    from spendgate.ledger.quarantine import row_problem
    from spendgate.store.sql_ledger import ledger_values

    built = LedgerRow.of_call(
        _admitted(None), None, Measured(200, "ok", Metered(Usage(1, 2, 3, 4, 5)), False), None, None, 1.5e9
    )
    fields = dict(built.__dict__)
    older = {k: v for k, v in fields.items() if k not in ("use_case_source", "use_case_evidence")}
    reordered = dict(reversed(fields.items()))
    stranger = {**fields, "not_a_column": 1}
    lines = [orjson.dumps(d) for d in (fields, older, reordered, stranger)] + [b"[1, 2]", b'{"request_id"']
    decoded = decode_lines(lines, "test")
    assert decoded == [fields, older, reordered, stranger]  # the list and the torn line are skipped
    with pytest.raises(TypeError):  # what `land_lines` skips as a torn line
        LedgerRow.from_journal(stranger)
    rows = [LedgerRow.from_journal(line) for line in decoded[:3]]
    same, old, shuffled = rows
    assert same == built and same.__dict__ is not built.__dict__
    assert shuffled == built
    assert old == LedgerRow(**older) and old.use_case_source is None
    for row in rows:
        assert tuple(row.__dict__) == LEDGER_COLUMNS  # the insert's fast path holds for each
        assert ledger_values(row) == ledger_values(LedgerRow(**{k: getattr(row, k) for k in LEDGER_COLUMNS}))
        assert row_problem(row) is None
