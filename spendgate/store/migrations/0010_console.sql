-- The people layer (web console): roles, sign-in sessions, one-time sign-in links, OIDC logins in
-- progress, and the audit log of every change a person makes.
-- depends: 0009_ledger_quarantine

-- A role held by a user. `lead` is per team (team_id); the other roles have team_id ''.
CREATE TABLE role_grants (
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,            -- admin, finance, approver, lead
    team_id TEXT NOT NULL DEFAULT '',
    granted_by TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    PRIMARY KEY (user_id, role, team_id)
);
CREATE INDEX role_grants_team ON role_grants (team_id, role);

-- A console session. Only the SHA-256 of the cookie's token is kept.
CREATE TABLE ui_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    method TEXT NOT NULL,          -- oidc, header, link
    roles TEXT NOT NULL DEFAULT '[]',  -- extra roles from the identity provider's groups (JSON)
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE INDEX ui_sessions_user ON ui_sessions (user_id);

-- One-time sign-in links (`spendgate console link`): valid until expires_at, once.
CREATE TABLE signin_links (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);

-- An OIDC authorization in progress: the PKCE verifier and nonce, found again by `state`.
CREATE TABLE oidc_logins (
    state_hash TEXT PRIMARY KEY,
    code_verifier TEXT NOT NULL,
    nonce TEXT NOT NULL,
    next_path TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- Every change made by a person, from the CLI, the admin API or the console.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,           -- an email, an OS user, or 'master-key'
    via TEXT NOT NULL,             -- cli, api, console
    action TEXT NOT NULL,          -- e.g. key.create, role.grant, exemption.approve, signin
    target TEXT NOT NULL,          -- what it acted on (an id or name)
    team_id TEXT,                  -- the team it concerns, when one does
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at);

-- Where a team lead is paged (Slack member id); email comes from users.email.
ALTER TABLE users ADD COLUMN slack_member_id TEXT;
