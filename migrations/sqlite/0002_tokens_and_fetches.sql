-- codestep schema 2 (SQLite): workspace API tokens (stored hashed) and fetch-attempt records.

-- A token is shown once when created; only its SHA-256 is kept.
CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    token_hash    BLOB NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);

CREATE INDEX api_tokens_by_workspace ON api_tokens (workspace_id);

-- One row per fetch() a step made: where to (host and path, never the query), through which connector,
-- and how it ended. No foreign key: records outlive the workspace or connector they name.
CREATE TABLE fetch_attempts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            INTEGER NOT NULL,
    workspace_id  TEXT,
    run_id        TEXT,
    connector     TEXT,
    method        TEXT NOT NULL,
    host          TEXT NOT NULL,
    path          TEXT NOT NULL,
    status        INTEGER,
    error         TEXT,
    blocked       INTEGER NOT NULL DEFAULT 0,
    redirects     INTEGER NOT NULL DEFAULT 0,
    duration_ms   REAL NOT NULL
);

CREATE INDEX fetch_attempts_by_workspace ON fetch_attempts (workspace_id, id);
