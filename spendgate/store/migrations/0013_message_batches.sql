-- Message Batches created through Spendgate: who created each (the key and the attribution its
-- calls are charged to) and whether its results have been metered. A batch's calls are priced
-- and written to the ledger when its results are first read through Spendgate, once: the claim
-- (metered_at set where it was NULL) says which fetch records them.
-- depends: 0009_ledger_quarantine

CREATE TABLE message_batches (
    batch_id TEXT PRIMARY KEY,         -- the provider's id, e.g. msgbatch_...
    provider TEXT NOT NULL,            -- anthropic
    created_at TEXT NOT NULL,
    request_count INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    user_id TEXT,
    cost_center TEXT,
    use_case TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '{}',   -- JSON object
    session_id TEXT,
    user_agent TEXT,
    create_request_id TEXT NOT NULL,   -- Spendgate's request id of the create call
    metered_at TEXT,                   -- when its results were metered; NULL until then
    metered_by TEXT,                   -- Spendgate's request id of the results fetch that metered them
    metered_calls INTEGER,             -- succeeded results written to the ledger
    metered_cost_nanos INTEGER
);

CREATE INDEX message_batches_org ON message_batches (org_id, created_at);
