"""Anthropic Message Batches through Spendgate: ownership, metering once, at the batch rate."""

from __future__ import annotations

from spendgate.models import MessageBatch
from spendgate.store import open_store


def batch(batch_id: str, org_id: str = "org_1") -> MessageBatch:
    return MessageBatch(
        batch_id=batch_id,
        provider="anthropic",
        created_at="2026-11-20T10:00:00.000000Z",
        request_count=3,
        key_id="key_1",
        org_id=org_id,
        team_id="team_1",
        user_id=None,
        cost_center="CC-1",
        use_case="summaries",
        tags={"repo": "api"},
        session_id=None,
        user_agent="anthropic-python",
        create_request_id="sg-1",
    )


def test_batch_store_claims_metering_once(database_url: str) -> None:
    store = open_store(database_url)
    store.migrate()
    try:
        store.insert_batch(batch("msgbatch_a"))
        store.insert_batch(batch("msgbatch_b", org_id="org_2"))
        store.insert_batch(batch("msgbatch_a", org_id="org_9"))  # a replay changes nothing
        assert store.get_batch("msgbatch_a") == batch("msgbatch_a")
        assert store.get_batch("msgbatch_x") is None
        assert store.batch_orgs(["msgbatch_a", "msgbatch_b", "msgbatch_x"]) == {
            "msgbatch_a": "org_1",
            "msgbatch_b": "org_2",
        }
        now = "2026-11-21T10:00:00.000000Z"
        assert store.claim_batch_metering("msgbatch_a", by="sg-2", now=now, calls=2, cost_nanos=77)
        assert not store.claim_batch_metering("msgbatch_a", by="sg-3", now=now, calls=2, cost_nanos=77)
        claimed = store.get_batch("msgbatch_a")
        assert claimed is not None and (claimed.metered_by, claimed.metered_cost_nanos) == ("sg-2", 77)
        assert [b.batch_id for b in store.list_batches(unmetered=True)] == ["msgbatch_b"]
    finally:
        store.close()
