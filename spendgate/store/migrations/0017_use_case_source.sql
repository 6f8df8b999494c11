-- Where each call's use case came from (issue #16): header, metadata, key, inferred:<rule> or
-- none, and for an inferred one the evidence its rule saw. Older rows keep NULL (their use case,
-- when not 'untagged', was declared: inference did not exist yet). The daily rollups gain the
-- source as a key, so every report can tell declared spend from inferred; SQLite cannot change a
-- primary key, so each rollup is copied into a new table (rollups are small: that is their point).
-- depends: 0013_message_batches

ALTER TABLE ledger ADD COLUMN use_case_source TEXT;
ALTER TABLE ledger ADD COLUMN use_case_evidence TEXT;
ALTER TABLE message_batches ADD COLUMN use_case_source TEXT;

CREATE TABLE ledger_daily_v2 (
    day TEXT NOT NULL,                       -- UTC day of started_at, YYYY-MM-DD
    org_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    cost_center TEXT NOT NULL,
    use_case TEXT NOT NULL,
    use_case_source TEXT NOT NULL,           -- '' for rows from before this migration
    provider TEXT NOT NULL,
    requested_model TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    billed_model TEXT NOT NULL,              -- response model, else upstream, else requested
    route_rule TEXT NOT NULL,
    pricing_tier TEXT NOT NULL,
    price_ref TEXT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    estimated_requests BIGINT NOT NULL DEFAULT 0,
    routed_requests BIGINT NOT NULL DEFAULT 0,   -- a rule picked a model other than the one asked for
    input_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_5m_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens BIGINT NOT NULL DEFAULT 0,
    web_search_requests BIGINT NOT NULL DEFAULT 0,
    cost_nanos BIGINT NOT NULL DEFAULT 0,
    counterfactual_nanos BIGINT NOT NULL DEFAULT 0,  -- what the calls would have cost as asked
    PRIMARY KEY (day, org_id, team_id, user_id, key_id, cost_center, use_case, use_case_source, provider,
                 requested_model, upstream_model, billed_model, route_rule, pricing_tier, price_ref)
);

INSERT INTO ledger_daily_v2
SELECT day, org_id, team_id, user_id, key_id, cost_center, use_case, '', provider, requested_model,
       upstream_model, billed_model, route_rule, pricing_tier, price_ref, requests, estimated_requests,
       routed_requests, input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens,
       output_tokens, reasoning_tokens, web_search_requests, cost_nanos, counterfactual_nanos
FROM ledger_daily;

DROP TABLE ledger_daily;
ALTER TABLE ledger_daily_v2 RENAME TO ledger_daily;

CREATE TABLE ledger_daily_team_v2 (
    day TEXT NOT NULL,
    org_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    cost_center TEXT NOT NULL,
    use_case TEXT NOT NULL,
    use_case_source TEXT NOT NULL,
    provider TEXT NOT NULL,
    requested_model TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    billed_model TEXT NOT NULL,
    route_rule TEXT NOT NULL,
    pricing_tier TEXT NOT NULL,
    price_ref TEXT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    estimated_requests BIGINT NOT NULL DEFAULT 0,
    routed_requests BIGINT NOT NULL DEFAULT 0,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_5m_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens BIGINT NOT NULL DEFAULT 0,
    web_search_requests BIGINT NOT NULL DEFAULT 0,
    cost_nanos BIGINT NOT NULL DEFAULT 0,
    counterfactual_nanos BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, org_id, team_id, cost_center, use_case, use_case_source, provider, requested_model,
                 upstream_model, billed_model, route_rule, pricing_tier, price_ref)
);

INSERT INTO ledger_daily_team_v2
SELECT day, org_id, team_id, cost_center, use_case, '', provider, requested_model, upstream_model,
       billed_model, route_rule, pricing_tier, price_ref, requests, estimated_requests, routed_requests,
       input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens,
       reasoning_tokens, web_search_requests, cost_nanos, counterfactual_nanos
FROM ledger_daily_team;

DROP TABLE ledger_daily_team;
ALTER TABLE ledger_daily_team_v2 RENAME TO ledger_daily_team;
