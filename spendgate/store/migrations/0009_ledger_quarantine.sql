-- Ledger rows the database refused for a permanent reason (a value no check caught): kept whole,
-- so they never block the rows behind them, and listed by `spendgate ledger quarantine`.
-- depends: 0008_report_runs

CREATE TABLE ledger_quarantine (
    request_id TEXT PRIMARY KEY,
    quarantined_at TEXT NOT NULL,
    reason TEXT NOT NULL,             -- the database's refusal, as text
    row_json TEXT NOT NULL            -- the row as journaled, JSON with every character escaped
);
