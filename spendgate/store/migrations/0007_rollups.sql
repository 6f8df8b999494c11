-- Daily rollups: what every report reads instead of the raw ledger (10M rows answer in < 1 s).
-- The ledger writer updates them in the same transaction as the rows it inserts
-- (store/sql_rollups.py), so a rollup never disagrees with the ledger it summarises.
-- Key columns hold '' for "none" (NULLs would never collide in a unique key); readers turn ''
-- back into NULL.
-- depends: 0006_provider_usage

CREATE TABLE ledger_daily (
    day TEXT NOT NULL,                       -- UTC day of started_at, YYYY-MM-DD
    org_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    cost_center TEXT NOT NULL,
    use_case TEXT NOT NULL,
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
    PRIMARY KEY (day, org_id, team_id, user_id, key_id, cost_center, use_case, provider,
                 requested_model, upstream_model, billed_model, route_rule, pricing_tier, price_ref)
);

-- ledger_daily without user and key (about 20x fewer rows): what reports that do not group or
-- filter by user or key read.
CREATE TABLE ledger_daily_team (
    day TEXT NOT NULL,
    org_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    cost_center TEXT NOT NULL,
    use_case TEXT NOT NULL,
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
    PRIMARY KEY (day, org_id, team_id, cost_center, use_case, provider, requested_model,
                 upstream_model, billed_model, route_rule, pricing_tier, price_ref)
);

-- Spend of calls tagged with a repository, PR or branch, per UTC month: cost per PR and per
-- repository (monthly: PRs and branches are many, and cost per PR is a monthly figure).
CREATE TABLE ledger_work_monthly (
    month TEXT NOT NULL,                     -- YYYY-MM
    team_id TEXT NOT NULL,
    repo TEXT NOT NULL,
    pr TEXT NOT NULL,
    branch TEXT NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    cost_nanos BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (month, team_id, repo, pr, branch)
);

-- Existing ledgers: the daily rollups in two statements. The work rollup needs the JSON tags
-- parsed, which the store does right after this migration (SQLStore.migrate).
INSERT INTO ledger_daily
SELECT SUBSTR(started_at, 1, 10), COALESCE(org_id, ''), COALESCE(team_id, ''), COALESCE(user_id, ''),
       COALESCE(key_id, ''), COALESCE(cost_center, ''), use_case, provider,
       COALESCE(requested_model, ''), COALESCE(upstream_model, ''),
       COALESCE(response_model, upstream_model, requested_model, ''), COALESCE(route_rule, ''),
       COALESCE(pricing_tier, ''), COALESCE(price_ref, ''),
       COUNT(*), SUM(estimated),
       SUM(CASE WHEN route_rule IS NOT NULL AND upstream_model <> requested_model THEN 1 ELSE 0 END),
       SUM(input_tokens), SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens), SUM(cache_read_tokens),
       SUM(output_tokens), SUM(reasoning_tokens), SUM(web_search_requests), SUM(cost_nanos),
       SUM(COALESCE(counterfactual_cost_nanos, cost_nanos))
FROM ledger
GROUP BY SUBSTR(started_at, 1, 10), COALESCE(org_id, ''), COALESCE(team_id, ''), COALESCE(user_id, ''),
         COALESCE(key_id, ''), COALESCE(cost_center, ''), use_case, provider,
         COALESCE(requested_model, ''), COALESCE(upstream_model, ''),
         COALESCE(response_model, upstream_model, requested_model, ''), COALESCE(route_rule, ''),
         COALESCE(pricing_tier, ''), COALESCE(price_ref, '');

INSERT INTO ledger_daily_team
SELECT day, org_id, team_id, cost_center, use_case, provider, requested_model, upstream_model,
       billed_model, route_rule, pricing_tier, price_ref,
       SUM(requests), SUM(estimated_requests), SUM(routed_requests), SUM(input_tokens),
       SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens), SUM(cache_read_tokens),
       SUM(output_tokens), SUM(reasoning_tokens), SUM(web_search_requests), SUM(cost_nanos),
       SUM(counterfactual_nanos)
FROM ledger_daily
GROUP BY day, org_id, team_id, cost_center, use_case, provider, requested_model, upstream_model,
         billed_model, route_rule, pricing_tier, price_ref;
