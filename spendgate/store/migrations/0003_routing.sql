-- Routing: which rule chose the model, what the requested model would have cost, fallbacks.
-- depends: 0002_budgets

ALTER TABLE ledger ADD COLUMN route_rule TEXT;
ALTER TABLE ledger ADD COLUMN counterfactual_cost_nanos BIGINT;
ALTER TABLE ledger ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
ALTER TABLE ledger ADD COLUMN fallback_from TEXT;
