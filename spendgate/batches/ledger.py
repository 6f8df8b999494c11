"""A batch's succeeded results as ledger rows, priced at the batch rate on the day it was created."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from spendgate.clock import from_epoch
from spendgate.models import LedgerRow, MessageBatch
from spendgate.pricing import Pricer, cost_of
from spendgate.providers.anthropic_batches import BatchCall

ENDPOINT = "/v1/messages/batches"


def batch_request_id(batch_id: str, custom_id: str) -> str:
    """The same id for the same result on every fetch: a replayed row is ignored by the ledger."""
    digest = hashlib.blake2b(f"{batch_id}\0{custom_id}".encode(), digest_size=12).hexdigest()
    return f"sg-batch-{digest}"


def batch_rows(
    batch: MessageBatch, calls: Sequence[BatchCall], pricer: Pricer, *, metered_at: float
) -> list[LedgerRow]:
    created = datetime.fromisoformat(batch.created_at.replace("Z", "+00:00"))
    ended = from_epoch(metered_at)
    rows = []
    for call in calls:
        price = pricer.price(batch.provider, call.model, created)
        cost = cost_of(price, call.usage) if price is not None else None
        usage = call.usage
        rows.append(
            LedgerRow(
                request_id=batch_request_id(batch.batch_id, call.custom_id),
                provider=batch.provider,
                endpoint=ENDPOINT,
                started_at=batch.created_at,
                ended_at=ended,
                status_code=200,
                status="ok",
                use_case=batch.use_case,
                use_case_source=batch.use_case_source,
                org_id=batch.org_id,
                team_id=batch.team_id,
                user_id=batch.user_id,
                key_id=batch.key_id,
                cost_center=batch.cost_center,
                tags=batch.tags,
                session_id=batch.session_id,
                client_request_id=call.custom_id,
                requested_model=call.model,
                upstream_model=call.model,
                response_model=call.model,
                input_tokens=usage.input_tokens,
                cache_write_5m_tokens=usage.cache_write_5m_tokens,
                cache_write_1h_tokens=usage.cache_write_1h_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                output_tokens=usage.output_tokens,
                web_search_requests=usage.web_search_requests,
                cost_nanos=cost.nanos if cost else 0,
                price_ref=price.ref if price else None,
                pricing_tier=cost.tier if cost else None,
                error_type=None if price else "model_not_priced",
                upstream_request_id=batch.batch_id,  # the row's custom_id is in client_request_id
                user_agent=batch.user_agent,
                counterfactual_cost_nanos=cost.nanos if cost else None,
            )
        )
    return rows
