-- Provider-reported usage and cost (admin usage/cost APIs or their exports), for reconciliation.
-- depends: 0005_pull_requests

-- One row per UTC day, provider, provider key id and model; a re-import replaces the row.
-- api_key_id is '' when the provider reports usage without a key (e.g. its console) and '*' for
-- cost the provider does not split by key. cost_nanos is NULL when only tokens are known.
CREATE TABLE provider_usage (
    day TEXT NOT NULL,             -- YYYY-MM-DD (UTC)
    provider TEXT NOT NULL,        -- anthropic, openai
    api_key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens BIGINT NOT NULL DEFAULT 0,         -- uncached input
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    requests BIGINT,
    cost_nanos BIGINT,
    source TEXT NOT NULL,          -- api, json, csv
    imported_at TEXT NOT NULL,
    PRIMARY KEY (day, provider, api_key_id, model)
);

CREATE INDEX provider_usage_provider_day ON provider_usage (provider, day);
