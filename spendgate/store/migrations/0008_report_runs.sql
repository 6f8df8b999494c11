-- Scheduled reports: one row per (schedule entry, period), claimed before the report is made, so
-- replicas sharing the database make and send each report once.
-- depends: 0007_rollups

CREATE TABLE report_runs (
    entry TEXT NOT NULL,              -- the [[report]] name in SPENDGATE_REPORTS_FILE
    period TEXT NOT NULL,             -- '2026-10' or '2026-W44'
    report TEXT NOT NULL,             -- finance or governance
    status TEXT NOT NULL,             -- running, done
    claimed_at TEXT NOT NULL,
    claimed_by TEXT NOT NULL,         -- host:pid of the process that claimed it
    finished_at TEXT,
    files TEXT NOT NULL DEFAULT '[]',
    emailed TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (entry, period)
);
