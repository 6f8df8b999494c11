"""Plain data shared by the pipeline steps, the stores and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spendgate.clock import from_epoch

if TYPE_CHECKING:  # the pipeline's values, read by LedgerRow.of_call (they import this module)
    from spendgate.admission import Admitted
    from spendgate.forward import Attempts
    from spendgate.meter import Measured
    from spendgate.pricing import Cost


@dataclass(frozen=True, slots=True)
class Org:
    id: str
    name: str
    created_at: str
    revoked_at: str | None = None


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    org_id: str
    name: str
    cost_center: str
    created_at: str
    revoked_at: str | None = None


@dataclass(frozen=True, slots=True)
class User:
    id: str
    team_id: str
    name: str
    email: str | None
    created_at: str
    revoked_at: str | None = None
    slack_member_id: str | None = None  # where the console pages a team lead (migration 0010)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A virtual key as stored: the secret itself is never kept, only its hash."""

    id: str
    key_hash: str
    key_prefix: str
    name: str
    org_id: str
    team_id: str
    user_id: str | None
    default_use_case: str | None
    default_tags: dict[str, str]
    created_at: str
    expires_at: str | None = None
    revoked_at: str | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    concurrency_limit: int | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a valid key joined with its team, for attribution on the hot path."""

    key_id: str
    key_name: str
    org_id: str
    team_id: str
    user_id: str | None
    cost_center: str
    default_use_case: str | None
    default_tags: dict[str, str]
    expires_at: str | None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    concurrency_limit: int | None = None
    team_name: str = ""


@dataclass
class LedgerRow:
    """One call. Field names match the ledger table's columns.

    No __slots__, unlike the other records: every call's row is journaled with orjson, which
    serializes a dataclass's __dict__ directly but a slotted one field by field (attribute
    lookups: 32k instructions a row instead of 14k)."""

    request_id: str
    provider: str
    endpoint: str
    started_at: str
    ended_at: str
    status_code: int
    status: str
    use_case: str
    first_byte_at: str | None = None
    org_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    key_id: str | None = None
    cost_center: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    session_id: str | None = None
    agent_id: str | None = None
    parent_agent_id: str | None = None
    client_request_id: str | None = None
    requested_model: str | None = None
    upstream_model: str | None = None
    response_model: str | None = None
    input_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    web_search_requests: int = 0
    cost_nanos: int = 0
    price_ref: str | None = None
    pricing_tier: str | None = None
    estimated: bool = False
    streamed: bool = False
    error_type: str | None = None
    upstream_request_id: str | None = None
    user_agent: str | None = None
    budget_note: str | None = None
    route_rule: str | None = None
    counterfactual_cost_nanos: int | None = None
    attempts: int = 1
    fallback_from: str | None = None
    # Where `use_case` came from: header, metadata, key, inferred:<rule> or none (migration 0017;
    # None on older rows); for an inferred one, what the call had for each of its rule's conditions.
    use_case_source: str | None = None
    use_case_evidence: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in LEDGER_COLUMNS}

    @classmethod
    def from_journal(cls, values: Any) -> LedgerRow:
        """A row from its journal line's decoded object (`row.__dict__` as the serving process
        wrote it). The ingest process reads every row back: taking the dict as the row's __dict__
        costs 2.5 us a row where the generated __init__ with 44 keywords costs 16. Only a dict of
        exactly the row's fields in column order is taken as it is (what `ledger_values` relies
        on); anything else goes through __init__, which fills defaults for a line written before a
        field existed and raises TypeError on a stranger."""
        if type(values) is dict and tuple(values) == LEDGER_COLUMNS:
            row = cls.__new__(cls)
            row.__dict__ = values
            return row
        return cls(**values)

    @classmethod
    def of_call(
        cls,
        call: Admitted,
        attempts: Attempts | None,
        measured: Measured,
        cost: Cost | None,
        counterfactual_nanos: int | None,
        ended: float,
    ) -> LedgerRow:
        """The row of one metered call: what admission decided, what forward did (None: it was
        refused before leaving), what the meter saw and what settlement priced."""
        p, w, metered, usage = call.principal, call.who, measured.metered, measured.metered.usage
        budget = call.budget
        note = None
        if budget is not None:
            note = f"blocked:{budget.blocked.budget.name}" if budget.blocked is not None else budget.note
        if attempts is not None:
            price, upstream_model, tries = attempts.price, attempts.model, attempts.total
            upstream_id, fallback_from = attempts.upstream_request_id, attempts.fallback_from
        else:
            price, upstream_model, tries, upstream_id, fallback_from = call.price, call.model, 1, None, None
        first_byte = measured.first_byte
        # Every field is assigned below, into a copy of a dict that already holds the 44 keys in
        # field order (the journal's key order): an assignment to a key the dict has is a cheap
        # store in place, where the generated __init__ (or a dict literal) inserts the keys one by
        # one and resizes (15K instructions a row against 11K). tests/test_ledger_rows.py checks
        # that each value lands under its own name.
        row = cls.__new__(cls)
        row.__dict__ = _EMPTY_ROW.copy()
        row.request_id = call.request_id
        row.provider = call.provider
        row.endpoint = call.request.path
        row.started_at = from_epoch(call.started)
        row.ended_at = from_epoch(ended)
        row.status_code = measured.status_code
        row.status = measured.status
        row.use_case = w.use_case
        row.first_byte_at = from_epoch(first_byte) if first_byte else None
        row.org_id = p.org_id
        row.team_id = p.team_id
        row.user_id = p.user_id
        row.key_id = p.key_id
        row.cost_center = p.cost_center
        row.tags = w.tags
        row.session_id = w.session_id
        row.agent_id = w.agent_id
        row.parent_agent_id = w.parent_agent_id
        row.client_request_id = w.client_request_id
        row.requested_model = call.info.model
        row.upstream_model = upstream_model
        row.response_model = metered.response_model
        row.input_tokens = usage.input_tokens
        row.cache_write_5m_tokens = usage.cache_write_5m_tokens
        row.cache_write_1h_tokens = usage.cache_write_1h_tokens
        row.cache_read_tokens = usage.cache_read_tokens
        row.output_tokens = usage.output_tokens
        row.reasoning_tokens = usage.reasoning_tokens
        row.web_search_requests = usage.web_search_requests
        row.cost_nanos = cost.nanos if cost is not None else 0
        row.price_ref = price.ref
        row.pricing_tier = cost.tier if cost is not None else None
        row.estimated = metered.estimated
        row.streamed = measured.streamed
        row.error_type = metered.error_type
        row.upstream_request_id = upstream_id
        row.user_agent = w.user_agent
        row.budget_note = note
        row.route_rule = call.route_rule
        row.counterfactual_cost_nanos = counterfactual_nanos
        row.attempts = tries
        row.fallback_from = fallback_from
        row.use_case_source = w.use_case_source
        row.use_case_evidence = w.use_case_evidence
        return row


@dataclass(frozen=True, slots=True)
class MessageBatch:
    """A Message Batch created through Spendgate: who pays for its calls, and whether they are metered."""

    batch_id: str
    provider: str
    created_at: str
    request_count: int
    key_id: str
    org_id: str
    team_id: str
    user_id: str | None
    cost_center: str | None
    use_case: str
    tags: dict[str, str]
    session_id: str | None
    user_agent: str | None
    create_request_id: str
    metered_at: str | None = None
    metered_by: str | None = None
    metered_calls: int | None = None
    metered_cost_nanos: int | None = None
    use_case_source: str | None = None  # where use_case came from (migration 0017)


LEDGER_COLUMNS: tuple[str, ...] = tuple(LedgerRow.__dataclass_fields__)
_EMPTY_ROW: dict[str, Any] = dict.fromkeys(LEDGER_COLUMNS)  # LedgerRow.of_call fills a copy
# The token counts a spend report sums, in display order.
TOKEN_COLUMNS: tuple[str, ...] = (
    "input_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "cache_read_tokens",
    "output_tokens",
    "reasoning_tokens",
)
