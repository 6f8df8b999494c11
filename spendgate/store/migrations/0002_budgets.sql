-- Budgets, their tier events, exemptions, and per-key rate limits.
-- depends: 0001_initial

CREATE TABLE budgets (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    scope_type TEXT NOT NULL,      -- org, team, user, key, cost_center, use_case, tag, session
    scope_value TEXT NOT NULL,     -- an id, a cost center, a use case, 'k=v', a session id or '*'
    amount_nanos BIGINT NOT NULL,  -- the budget; tiers are percentages of it
    period TEXT NOT NULL,          -- month, week, day, fixed
    window_start TEXT,             -- fixed windows only (ISO-8601 UTC)
    window_end TEXT,
    timezone TEXT NOT NULL,
    tiers TEXT NOT NULL,           -- JSON list of {"name", "percent", "action"}
    mode TEXT NOT NULL,            -- enforce or observe
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- A tier crossed, once per budget, period and tier (the unique key enforces "once").
CREATE TABLE budget_events (
    budget_id TEXT NOT NULL REFERENCES budgets(id),
    period_key TEXT NOT NULL,
    tier TEXT NOT NULL,
    percent INTEGER NOT NULL,
    spend_nanos BIGINT NOT NULL,
    limit_nanos BIGINT NOT NULL,
    request_id TEXT,
    observed INTEGER NOT NULL DEFAULT 0,
    crossed_at TEXT NOT NULL,
    PRIMARY KEY (budget_id, period_key, tier)
);

CREATE TABLE exemptions (
    id TEXT PRIMARY KEY,
    budget_id TEXT NOT NULL REFERENCES budgets(id),
    amount_nanos BIGINT,           -- extra headroom in USD, or...
    percent INTEGER,               -- ...as a percentage of the budget
    use_case TEXT,                 -- only calls with this use case get the headroom
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    status TEXT NOT NULL,          -- pending, approved, denied
    decided_by TEXT,
    decided_at TEXT,
    decision_note TEXT
);

ALTER TABLE api_keys ADD COLUMN rpm_limit INTEGER;
ALTER TABLE api_keys ADD COLUMN tpm_limit INTEGER;
ALTER TABLE api_keys ADD COLUMN concurrency_limit INTEGER;

-- What budget enforcement said about a call: '' (fine), or e.g. 'would_block:team-platform'.
ALTER TABLE ledger ADD COLUMN budget_note TEXT;
CREATE INDEX ledger_use_case_started ON ledger (use_case, started_at);
CREATE INDEX ledger_key_started ON ledger (key_id, started_at);
