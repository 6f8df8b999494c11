-- Spendgate schema, one source for every backend (portable SQL: SQLite and PostgreSQL).
-- Forward-only: never edit a migration that has shipped; add the next numbered file.

CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    cost_center TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    UNIQUE (org_id, name)
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams(id),
    name TEXT NOT NULL,
    email TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    UNIQUE (team_id, name)
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    name TEXT NOT NULL,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    team_id TEXT NOT NULL REFERENCES teams(id),
    user_id TEXT REFERENCES users(id),
    default_use_case TEXT,
    default_tags TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);

-- One row per call. Times are ISO-8601 UTC strings (sortable); money is integer nano-dollars.
CREATE TABLE ledger (
    request_id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    started_at TEXT NOT NULL,
    first_byte_at TEXT,
    ended_at TEXT NOT NULL,
    org_id TEXT,
    team_id TEXT,
    user_id TEXT,
    key_id TEXT,
    cost_center TEXT,
    use_case TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '{}',
    session_id TEXT,
    agent_id TEXT,
    parent_agent_id TEXT,
    client_request_id TEXT,
    requested_model TEXT,
    upstream_model TEXT,
    response_model TEXT,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_5m_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens BIGINT NOT NULL DEFAULT 0,
    web_search_requests BIGINT NOT NULL DEFAULT 0,
    cost_nanos BIGINT NOT NULL DEFAULT 0,
    price_ref TEXT,
    pricing_tier TEXT,
    estimated INTEGER NOT NULL DEFAULT 0,
    streamed INTEGER NOT NULL DEFAULT 0,
    status_code INTEGER NOT NULL,
    status TEXT NOT NULL,
    error_type TEXT,
    upstream_request_id TEXT,
    user_agent TEXT
);

CREATE INDEX ledger_started_at ON ledger (started_at);
CREATE INDEX ledger_team_started ON ledger (team_id, started_at);
CREATE INDEX ledger_session ON ledger (session_id);
