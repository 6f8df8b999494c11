-- Merged pull requests (webhook and backfill), GitHub delivery ids, and who a GitHub login is.
-- depends: 0004_alerts

-- One row per merged PR. repo is the lower-cased 'owner/name'; author the lower-cased login.
CREATE TABLE pull_requests (
    repo TEXT NOT NULL,
    number INTEGER NOT NULL,
    author TEXT NOT NULL,
    merged_at TEXT NOT NULL,       -- ISO-8601 UTC, like the ledger
    title TEXT,
    base_ref TEXT,
    head_ref TEXT,
    url TEXT,
    additions INTEGER,
    deletions INTEGER,
    source TEXT NOT NULL,          -- webhook, gh-json, csv (whichever stored it first)
    stored_at TEXT NOT NULL,
    PRIMARY KEY (repo, number)
);

CREATE INDEX pull_requests_merged_at ON pull_requests (merged_at);

-- Every X-GitHub-Delivery id processed: a replayed delivery changes nothing.
CREATE TABLE github_deliveries (
    delivery_id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    received_at TEXT NOT NULL
);

-- GitHub login (lower-cased) -> Spendgate user; the PR counts for that user's team.
CREATE TABLE github_identities (
    login TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    mapped_at TEXT NOT NULL
);

-- Repository -> team, for PRs whose author is not mapped.
CREATE TABLE repo_teams (
    repo TEXT PRIMARY KEY,
    team_id TEXT NOT NULL REFERENCES teams(id),
    mapped_at TEXT NOT NULL
);
