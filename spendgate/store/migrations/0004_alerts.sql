-- Anomaly, budget-tier and forecast alerts, and every attempt to deliver them.
-- depends: 0003_routing

-- One row per alert. alert_key is what makes an alert happen once across replicas:
-- 'anomaly:<by>:<value>:<local date>', 'budget:<budget id>:<period>:<tier>', 'forecast:<budget id>:<period>'.
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    alert_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,            -- anomaly, budget, forecast
    group_by TEXT NOT NULL,        -- team, use_case, key, user, cost_center, budget
    group_value TEXT NOT NULL,
    day TEXT NOT NULL,             -- local date (anomaly) or period key (budget, forecast)
    status TEXT NOT NULL,          -- open, resolved (budget and forecast alerts are never resolved)
    summary TEXT NOT NULL,
    details TEXT NOT NULL,         -- JSON: the numbers behind the alert, contributors, the CLI command
    opened_at TEXT NOT NULL,
    resolved_at TEXT,
    resolve_note TEXT
);

CREATE INDEX alerts_status ON alerts (status, kind);

-- Each attempt to send an alert (trigger or resolve) to a channel: delivered or failed.
CREATE TABLE alert_deliveries (
    alert_id TEXT NOT NULL REFERENCES alerts(id),
    channel TEXT NOT NULL,
    action TEXT NOT NULL,          -- trigger, resolve
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,          -- delivered, failed
    http_status INTEGER,
    error TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY (alert_id, channel, action, attempt)
);
